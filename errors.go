package gozd

import "errors"

// Errors returned by gozd, to test for with errors.Is.
var (
	// ErrUnknownGroup: a handler was registered for a group the config
	// does not have.
	ErrUnknownGroup = errors.New("no such group in the config")
	// ErrHandlerKind: the handler does not suit the group's mode.
	ErrHandlerKind = errors.New("wrong handler kind for the group's mode")
	// ErrDuplicateHandler: the group has a handler already.
	ErrDuplicateHandler = errors.New("group has a handler already")
	// ErrNotDaemonized: RegistHandler was called before Daemonize.
	ErrNotDaemonized = errors.New("Daemonize has not been called")
	// ErrServing: Serve was called twice on one Daemon.
	ErrServing = errors.New("Serve called twice")
	// ErrClosed: Serve returns it after Shutdown or Close.
	ErrClosed = errors.New("daemon closed")
	// ErrSocketInUse: a unix socket file to bind is served by a live
	// process.
	ErrSocketInUse = errors.New("socket is in use by a running process")
	// ErrNotRunning: -s found no running daemon for the config.
	ErrNotRunning = errors.New("no daemon is running")
	// ErrAlreadyRunning: a start found the daemon of the config running.
	ErrAlreadyRunning = errors.New("daemon is already running")
	// ErrNoHandoff: Conn.Handoff found no worker to take the connection.
	ErrNoHandoff = errors.New("no new worker takes the connection")
)

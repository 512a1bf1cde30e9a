package gozd

import (
	"os"
	"os/signal"
	"syscall"
)

// daemonSignals are the signals a gozd daemon process handles. Daemonize
// catches them before it does anything else: the default action of every one
// but SIGCHLD ends the process (SIGQUIT with a dump of every goroutine), so a
// signal that arrived between the pid file appearing (or a worker being
// started) and a handler being installed would kill a master that systemd or
// an operator already sees, or a worker that a cgroup-wide SIGQUIT reached.
// SIGPIPE is caught so that a write to a stderr nobody reads any more fails
// with EPIPE instead of killing the process; catching it, rather than
// ignoring it, keeps it at its default in the processes the program starts.
var daemonSignals = []os.Signal{
	syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGINT,
	syscall.SIGUSR1, syscall.SIGPIPE,
}

// catchSignals starts catching daemonSignals into a channel with room for a
// burst, so that none is lost while the process sets itself up: the master's
// loop or the worker reads them once it runs.
func catchSignals() chan os.Signal {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, daemonSignals...)
	return sigs
}

// releaseSignals is for a process that turned out to be no daemon (-s, the
// launcher of a background start): it stops catching, so that Ctrl-C and
// friends act on it as on any command, and re-raises whatever arrived
// meanwhile, which now takes its default action.
func releaseSignals(sigs chan os.Signal) {
	signal.Stop(sigs)
	for {
		select {
		case sig := <-sigs:
			if sig != syscall.SIGPIPE {
				syscall.Kill(os.Getpid(), sig.(syscall.Signal))
			}
		default:
			return
		}
	}
}

// isDaemon reports whether opts make this process (not a worker) a master:
// in the foreground, or as the background master a launcher started.
func isDaemon(opts *options) bool {
	if opts.signal != "" {
		return false
	}
	_, background := os.LookupEnv(envMaster)
	return opts.foreground || background
}

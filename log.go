package gozd

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// newLogger returns gozd's log: text lines with the pid, the role (master or
// worker) and, for workers, the generation.
func newLogger(w io.Writer, verbose bool, role string, gen int) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	l := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("pid", os.Getpid(), "role", role)
	if gen > 0 {
		l = l.With("gen", gen)
	}
	return l
}

// openLogFile opens the configured log file path for appending, creating it
// 0640. It may be a symlink: the operator chose the path.
func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// openLog opens the background log of cfg: its logfile, or the default one
// in the runtime directory, which gozd creates if need be and opens only if
// it is a regular file of this user's, never through a symlink.
func openLog(cfg *Config) (*os.File, error) {
	if cfg.LogFile != "" {
		return openLogFile(cfg.LogFile)
	}
	if err := defaultRunDir(cfg).ensure(); err != nil {
		return nil, err
	}
	path := logPath(cfg)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, ownFileError(path, "log file", err)
	}
	if err := checkOwnFile(f, "log file"); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// redirectOutput makes the log file of cfg this process's stdout and
// stderr, so that a panic, gozd's log and the workers' output (copied there
// by the master) all land in it; reopening for logrotate is calling it
// again.
func redirectOutput(cfg *Config) error {
	f, err := openLog(cfg)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup2(int(f.Fd()), fd); err != nil {
			return fmt.Errorf("log file %s: %w", f.Name(), err)
		}
	}
	return nil
}

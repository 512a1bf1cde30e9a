package gozd

import (
	"fmt"
	"io"
	"log/slog"
	"os"

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

// openLogFile opens path for appending, creating it 0640.
func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// redirectOutput makes the log file this process's stdout and stderr, so
// that a panic, gozd's log and the workers' output (copied there by the
// master) all land in it; reopening for logrotate is calling it again.
func redirectOutput(path string) error {
	f, err := openLogFile(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup2(int(f.Fd()), fd); err != nil {
			return fmt.Errorf("log file %s: %w", path, err)
		}
	}
	return nil
}

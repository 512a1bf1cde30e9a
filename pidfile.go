package gozd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// pidPath is where the pid file of cfg lives: its pidfile directive, or by
// default <name>.pid in the daemon's runtime directory (see runDir).
func pidPath(cfg *Config) string {
	if cfg.PidFile != "" {
		return cfg.PidFile
	}
	return filepath.Join(defaultRunDir(cfg).path(), configName(cfg)+".pid")
}

// statePath is where the master's state file lives: beside its pid file.
func statePath(pidPath string) string { return pidPath + ".state" }

// logPath is where a background daemon of cfg logs: its logfile directive,
// or by default <name>.log in the daemon's runtime directory.
func logPath(cfg *Config) string {
	if cfg.LogFile != "" {
		return cfg.LogFile
	}
	return filepath.Join(defaultRunDir(cfg).path(), configName(cfg)+".log")
}

// pidFile is the master's pid file, locked (flock) for the master's whole
// life: the lock, not the file's existence, says a daemon runs, so a file
// left by a killed daemon does not block a new start, and -s never signals an
// unrelated process that happens to have the pid written in a stale file.
type pidFile struct {
	path string
	f    *os.File // holds the lock
}

// lockPidFile takes the lock of cfg's pid file and writes this process's
// pid, atomically: the pid goes to a temporary file, locked, then renamed
// over the path, so a reader never sees a half-written pid. A pid file in
// place that is a symlink or another user's is refused, not followed.
func lockPidFile(cfg *Config) (*pidFile, error) {
	path := pidPath(cfg)
	if cfg.PidFile == "" {
		if err := defaultRunDir(cfg).ensure(); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	for attempt := 0; attempt < 10; attempt++ {
		// Read-only is enough for flock; O_NONBLOCK keeps a FIFO
		// planted at the path from hanging the start.
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, ownFileError(path, "pid file", err)
		}
		if err := checkOwnFile(f, "pid file"); err != nil {
			f.Close()
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			defer f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				if pid, perr := readPid(f); perr == nil {
					return nil, fmt.Errorf("%w (pid %d, pid file %s)", ErrAlreadyRunning, pid, path)
				}
				return nil, fmt.Errorf("%w (pid file %s)", ErrAlreadyRunning, path)
			}
			return nil, fmt.Errorf("pid file %s: lock: %w", path, err)
		}
		if !samePath(f, path) {
			// Another start replaced the file between our open and
			// our lock: try again on the new one.
			f.Close()
			continue
		}
		// Holding the old file's lock, put a locked new one in its place.
		// CreateTemp opens with O_EXCL, so a planted name is never
		// followed, and the rename replaces the path, not a file it
		// might link to.
		tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("pid file: %w", err)
		}
		ok := false
		defer func() {
			if !ok {
				tmp.Close()
				os.Remove(tmp.Name())
			}
			f.Close()
		}()
		if err := unix.Flock(int(tmp.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			return nil, fmt.Errorf("pid file: lock: %w", err)
		}
		if _, err := fmt.Fprintf(tmp, "%d\n", os.Getpid()); err != nil {
			return nil, fmt.Errorf("pid file: %w", err)
		}
		if err := tmp.Chmod(0o644); err != nil {
			return nil, fmt.Errorf("pid file: %w", err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return nil, fmt.Errorf("pid file: %w", err)
		}
		ok = true
		return &pidFile{path: path, f: tmp}, nil
	}
	return nil, fmt.Errorf("pid file %s keeps being replaced by another start", path)
}

// samePath reports whether f is the file now at path (a symlink there is
// not followed, so it never is).
func samePath(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Lstat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// remove deletes the pid file, then lets the lock go.
func (p *pidFile) remove() {
	if samePath(p.f, p.path) {
		os.Remove(p.path)
	}
	p.f.Close()
}

// readPid reads the pid in the open pid file f.
func readPid(f *os.File) (int, error) {
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, 64), 64))
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", f.Name(), err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s does not hold a pid", f.Name())
	}
	return pid, nil
}

// runningPid returns the pid of the daemon whose pid file is path, if one
// holds its lock, and the uid owning the file. A pid file nobody holds is
// stale: ErrNotRunning says so. A pid file gozd cannot trust (a symlink,
// another user's) is an error naming its owner.
func runningPid(path string) (pid int, owner uint32, err error) {
	f, err := openOwnFile(path, "pid file")
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("%w (no pid file %s)", ErrNotRunning, path)
	}
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return 0, 0, fmt.Errorf("pid file %s: %w", path, err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if err == nil {
		pid, _ := readPid(f)
		return 0, 0, fmt.Errorf("%w (stale pid file %s names pid %d, which does not hold its lock)", ErrNotRunning, path, pid)
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return 0, 0, fmt.Errorf("pid file %s: lock: %w", path, err)
	}
	pid, err = readPid(f)
	return pid, st.Uid, err
}

// lockFree reports whether nobody holds the lock of the pid file at path any
// more, which is how -s quit and -s stop see the daemon gone.
func lockFree(path string) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return true
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil
}

package gozd

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pidPath is where the pid file of cfg lives: its pidfile directive, or by
// default a file in the temporary directory named after the config file and
// a hash of its absolute path, so that -s with the same -c finds it and two
// configs never share one.
func pidPath(cfg *Config) string {
	if cfg.PidFile != "" {
		return cfg.PidFile
	}
	return defaultRunPath(cfg, ".pid")
}

// logPath is where a background daemon of cfg logs: its logfile directive,
// or by default beside the default pid file.
func logPath(cfg *Config) string {
	if cfg.LogFile != "" {
		return cfg.LogFile
	}
	return defaultRunPath(cfg, ".log")
}

func defaultRunPath(cfg *Config, ext string) string {
	sum := sha256.Sum256([]byte(cfg.File))
	base := strings.TrimSuffix(filepath.Base(cfg.File), filepath.Ext(cfg.File))
	return filepath.Join(os.TempDir(), "gozd-"+base+"-"+hex.EncodeToString(sum[:4])+ext)
}

// pidFile is the master's pid file, locked (flock) for the master's whole
// life: the lock, not the file's existence, says a daemon runs, so a file
// left by a killed daemon does not block a new start, and -s never signals an
// unrelated process that happens to have the pid written in a stale file.
type pidFile struct {
	path string
	f    *os.File // holds the lock
}

// lockPidFile takes the lock and writes this process's pid, atomically: the
// pid goes to a temporary file, locked, then renamed over path, so a reader
// never sees a half-written pid.
func lockPidFile(path string) (*pidFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	for attempt := 0; attempt < 10; attempt++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("pid file: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				if pid, perr := readPid(path); perr == nil {
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

// samePath reports whether f is the file now at path.
func samePath(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(path, &b) != nil {
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

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s does not hold a pid", path)
	}
	return pid, nil
}

// runningPid returns the pid of the daemon whose pid file is path, if one
// holds its lock. A pid file nobody holds is stale: ErrNotRunning says so.
func runningPid(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%w (no pid file %s)", ErrNotRunning, path)
	}
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if err == nil {
		pid, _ := readPid(path)
		return 0, fmt.Errorf("%w (stale pid file %s names pid %d, which does not hold its lock)", ErrNotRunning, path, pid)
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return 0, fmt.Errorf("pid file %s: lock: %w", path, err)
	}
	return readPid(path)
}

// lockFree reports whether nobody holds the lock of the pid file at path any
// more, which is how -s quit and -s stop see the daemon gone.
func lockFree(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil
}

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
	"syscall"
)

// The runtime directory holds a daemon's default files (pid, state, log)
// when its config names no pidfile or logfile. It is private to the user the
// daemon runs as, so no other local user can plant, replace or read a file
// that root's master writes or that -s trusts:
//
//	root:    /run/gozd/<name>-<hash>/
//	others:  $XDG_RUNTIME_DIR/gozd/<name>-<hash>/ when that is a directory
//	         of theirs that nobody else can write, else
//	         /tmp/gozd-<uid>/<name>-<hash>/
//
// (root without a /run directory uses /tmp/gozd-0/...). <name> is the config
// file's name without its extension and <hash> 8 hex digits of a SHA-256 of
// its absolute path, so -s with the same -c computes the same directory and
// two configs never share one. Every directory gozd creates is 0700 and is
// checked after creation: a directory, not a symlink, owned by this user,
// writable by nobody else. A master removes its <name>-<hash> directory as
// it exits, unless the default log file (of a background start) is there.

// runDir is the default runtime directory of cfg: base exists already (gozd
// creates nothing above it); elems are the directories below it that gozd
// creates, outermost first.
type runDir struct {
	base  string
	elems []string
}

func (d runDir) path() string { return filepath.Join(append([]string{d.base}, d.elems...)...) }

// configName is the <name> of cfg's default files.
func configName(cfg *Config) string {
	return strings.TrimSuffix(filepath.Base(cfg.File), filepath.Ext(cfg.File))
}

// defaultRunDir chooses the runtime directory of cfg for this user and
// environment; it creates and checks nothing.
func defaultRunDir(cfg *Config) runDir {
	sum := sha256.Sum256([]byte(cfg.File))
	daemon := configName(cfg) + "-" + hex.EncodeToString(sum[:4])
	uid := os.Geteuid()
	if uid == 0 {
		if fi, err := os.Lstat("/run"); err == nil && fi.IsDir() {
			return runDir{base: "/run", elems: []string{"gozd", daemon}}
		}
	} else if xdg := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(xdg) && checkOwnDir(xdg) == nil {
		return runDir{base: xdg, elems: []string{"gozd", daemon}}
	}
	return runDir{base: "/tmp", elems: []string{"gozd-" + strconv.Itoa(uid), daemon}}
}

// ensure creates the runtime directory (mode 0700) where it is missing and
// checks every directory gozd creates, whoever created it.
func (d runDir) ensure() error {
	p := d.base
	for _, e := range d.elems {
		p = filepath.Join(p, e)
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("runtime directory: %w", err)
		}
		if err := checkOwnDir(p); err != nil {
			return err
		}
	}
	return nil
}

// check checks the directories of d that exist, as ensure does, creating
// none: -s only reads. A missing one is no error; the pid file is then
// missing too, which says more.
func (d runDir) check() error {
	p := d.base
	for _, e := range d.elems {
		p = filepath.Join(p, e)
		if err := checkOwnDir(p); errors.Is(err, os.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
	}
	return nil
}

// checkOwnDir checks that path (not followed if a symlink) is a directory
// of this user that no group or other user can write to.
func checkOwnDir(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("runtime directory: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	euid := os.Geteuid()
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("runtime directory %s is a symbolic link owned by uid %d: refusing to use it; remove it", path, st.Uid)
	case !fi.IsDir():
		return fmt.Errorf("runtime directory %s is not a directory (owner uid %d): refusing to use it; remove it", path, st.Uid)
	case int(st.Uid) != euid:
		return fmt.Errorf("runtime directory %s is owned by uid %d, not by uid %d running gozd: refusing to use it; remove it", path, st.Uid, euid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("runtime directory %s (owner uid %d) is writable by group or others (mode %04o): refusing to use it", path, st.Uid, fi.Mode().Perm())
	}
	return nil
}

// checkOwnFile checks a file gozd trusts (the pid and state files, the
// default log) once open: a regular file with one link, owned by this user
// or root. Another user's file could name any pid, or be a link to a file
// that is not gozd's.
func checkOwnFile(f *os.File, what string) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("%s %s: %w", what, f.Name(), err)
	}
	euid := uint32(os.Geteuid())
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return fmt.Errorf("%s %s is not a regular file (owner uid %d): refusing to use it", what, f.Name(), st.Uid)
	case st.Uid != euid && st.Uid != 0:
		return fmt.Errorf("%s %s is owned by uid %d, not by uid %d running gozd or root: refusing to use it; remove it if no daemon of that user runs", what, f.Name(), st.Uid, euid)
	case st.Nlink != 1:
		return fmt.Errorf("%s %s (owner uid %d) has %d hard links: refusing to use it", what, f.Name(), st.Uid, st.Nlink)
	}
	return nil
}

// openOwnFile opens gozd's own file at path for reading: never through a
// symlink, never blocking on a FIFO, and only one checkOwnFile accepts.
func openOwnFile(path, what string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, ownFileError(path, what, err)
	}
	if err := checkOwnFile(f, what); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ownFileError says why gozd's own file at path could not be opened, naming
// a symlink's owner when O_NOFOLLOW refused one.
func ownFileError(path, what string, err error) error {
	if errors.Is(err, syscall.ELOOP) {
		var uid any = "?"
		if fi, lerr := os.Lstat(path); lerr == nil {
			uid = fi.Sys().(*syscall.Stat_t).Uid
		}
		return fmt.Errorf("%s %s is a symbolic link owned by uid %v: refusing to follow it; remove it", what, path, uid)
	}
	return fmt.Errorf("%s: %w", what, err)
}

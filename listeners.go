package gozd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// listen binds the listener of group g: a tcp address, or a unix socket
// whose file appears at its path with g.Chmod and g.Owner already set (see
// listenUnix). A socket file left behind by a process that died (nobody
// accepts on it) is removed first; one that somebody still serves is an
// error, so two daemons never steal each other's socket.
func listen(g *GroupConfig) (net.Listener, error) {
	switch g.Network {
	case "tcp":
		ln, err := net.Listen("tcp", g.Address)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", g, err)
		}
		return ln, nil
	case "unix":
		ln, err := listenUnix(g)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", g, err)
		}
		return ln, nil
	case "udp":
		return listenPacket(g)
	}
	return nil, fmt.Errorf("%s: unknown network %q", g, g.Network)
}

// bindDirPrefix starts the name of the private directory a unix socket is
// bound in before it is renamed into place.
const bindDirPrefix = ".gozd-bind-"

// unixListener is a unix socket listener whose file was bound in a private
// directory and renamed to its path. The kernel keeps naming the socket by
// the name it was bound under, so Addr and Close use the path instead.
type unixListener struct {
	*net.UnixListener
	addr    *net.UnixAddr // where the socket file is
	dev     uint64        // device and inode of the socket file; the open
	ino     uint64        // socket pins the inode, so no other file has them
	created socketAttrs   // what the file had when bound, before chmod and owner

	unlink    bool // remove the socket file on Close, as net.UnixListener does
	closeOnce sync.Once
	closeErr  error
}

// socketAttrs are the permission bits and owner of a socket file.
type socketAttrs struct {
	mode     os.FileMode
	uid, gid int
}

// Addr returns the path of the socket file.
func (l *unixListener) Addr() net.Addr { return l.addr }

// SetUnlinkOnClose sets whether Close removes the socket file; it does by
// default.
func (l *unixListener) SetUnlinkOnClose(unlink bool) { l.unlink = unlink }

// Close stops listening and, unless SetUnlinkOnClose(false) was called,
// removes the socket file if it is still this listener's.
func (l *unixListener) Close() error {
	l.closeOnce.Do(func() {
		l.closeErr = l.UnixListener.Close()
		if l.unlink && l.isSocketFile(l.addr.Name) {
			os.Remove(l.addr.Name)
		}
	})
	return l.closeErr
}

// isSocketFile reports whether path is this listener's socket file.
func (l *unixListener) isSocketFile(path string) bool {
	var st unix.Stat_t
	return unix.Lstat(path, &st) == nil && l.isFile(&st)
}

func (l *unixListener) isFile(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFSOCK && st.Dev == l.dev && st.Ino == l.ino
}

// listenUnix binds g's unix socket so that its file never exists at its path
// with any mode or owner but g's: it binds in a fresh 0700 directory next to
// the path, sets chmod and owner there, and renames the file into place,
// which keeps the socket bound to it. The rename never replaces a file that
// appeared at the path meanwhile. The process umask is not touched: it is
// shared by every thread.
func listenUnix(g *GroupConfig) (*unixListener, error) {
	path := g.Address
	uid, gid, err := g.ownerIDs()
	if err != nil {
		return nil, err
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), bindDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("binding %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, filepath.Base(path))
	bindPath := tmp
	if len(tmp) > maxUnixPath {
		// The longer path does not fit in sun_path; the directory's
		// descriptor in /proc names it in a few bytes.
		dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("binding %s: %w", path, err)
		}
		defer unix.Close(dfd)
		bindPath = fmt.Sprintf("/proc/self/fd/%d/%s", dfd, filepath.Base(path))
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: bindPath, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("binding %s: %w", path, err)
	}
	ul.SetUnlinkOnClose(false)
	fail := func(err error) (*unixListener, error) {
		ul.Close()
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Lstat(tmp, &st); err != nil {
		return fail(fmt.Errorf("binding %s: %w", path, err))
	}
	l := &unixListener{
		UnixListener: ul,
		addr:         &net.UnixAddr{Name: path, Net: "unix"},
		dev:          st.Dev,
		ino:          st.Ino,
		created:      socketAttrs{mode: os.FileMode(st.Mode & 0o777), uid: int(st.Uid), gid: int(st.Gid)},
		unlink:       true,
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(tmp, uid, gid); err != nil {
			return fail(fmt.Errorf("owner %s for %s: %w", g.Owner, path, err))
		}
	}
	if g.Chmod != 0 {
		if err := os.Chmod(tmp, g.Chmod); err != nil {
			return fail(fmt.Errorf("chmod %#o for %s: %w", uint32(g.Chmod), path, err))
		}
	}
	if err := renameNoReplace(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fail(fmt.Errorf("%s was created by someone else while gozd bound it; not replacing it", path))
		}
		return fail(fmt.Errorf("binding %s: %w", path, err))
	}
	return l, nil
}

// renameNoReplace renames oldpath to newpath unless newpath exists.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// A file system without RENAME_NOREPLACE: a hard link is
		// just as atomic and never replaces either. The private
		// directory, removed afterwards, takes the old name.
		return os.Link(oldpath, newpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// updateSocketFile applies to the socket file of a kept listener the chmod
// and owner of the group's new config, from was to now: what now no longer
// sets returns to what the file had when it was bound. It opens the path
// without following a symlink and changes the file only if it is still this
// listener's socket; anything else planted there is left alone.
func (l *unixListener) updateSocketFile(was, now *GroupConfig) error {
	path := l.addr.Name
	oldUID, oldGID, err := was.ownerIDs()
	if err != nil {
		return err
	}
	uid, gid, err := now.ownerIDs()
	if err != nil {
		return err
	}
	// -1 leaves a part of the owner as it is.
	switch {
	case uid == oldUID:
		uid = -1
	case uid < 0:
		uid = l.created.uid
	}
	switch {
	case gid == oldGID:
		gid = -1
	case gid < 0:
		gid = l.created.gid
	}
	mode := now.Chmod
	if mode == 0 {
		mode = l.created.mode
	}
	setMode := now.Chmod != was.Chmod

	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket file %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("socket file %s: %w", path, err)
	}
	if !l.isFile(&st) {
		return fmt.Errorf("%s is no longer the socket gozd bound there; leaving it as it is", path)
	}
	if uid >= 0 || gid >= 0 {
		if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("owner %s for %s: %w", now.Owner, path, err)
		}
	}
	if setMode {
		// fchmod does not take an O_PATH descriptor; its /proc link
		// reaches the very inode.
		if err := os.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), mode); err != nil {
			return fmt.Errorf("chmod %#o for %s: %w", uint32(mode), path, err)
		}
	}
	return nil
}

// removeStaleSocket removes the socket file at path if no process accepts on
// it. It refuses to touch anything that is not a socket.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket; not removing it", path)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: %w", path, ErrSocketInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("checking socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	return nil
}

// dupListenerFD returns a close-on-exec duplicate of ln's descriptor without
// going through (*os.File).Fd, which would switch the socket, shared by every
// process holding it, to blocking mode and could leave a draining worker's
// accept stuck in the kernel (golang/go#29277).
func dupListenerFD(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("listener %s has no file descriptor", ln.Addr())
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, fmt.Errorf("dup listener %s: %w", ln.Addr(), dupErr)
	}
	return fd, nil
}

// listenerFromFD takes over an inherited listening socket. The descriptor is
// closed; the returned listener holds its own duplicate. A unix listener made
// this way never unlinks its socket file: the file belongs to the master.
func listenerFromFD(fd int, name string) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), name)
	if f == nil {
		return nil, fmt.Errorf("invalid descriptor %d for %s", fd, name)
	}
	defer f.Close()
	ln, err := listenerFromFile(f) // a listener, or a udp socket
	if err != nil {
		return nil, fmt.Errorf("descriptor %d for %s: %w", fd, name, err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
		if path, ok := renamedSocketPath(ul.Addr().String()); ok {
			return &unixListener{UnixListener: ul, addr: &net.UnixAddr{Name: path, Net: "unix"}}, nil
		}
	}
	return ln, nil
}

// renamedSocketPath returns the path of a socket file that listenUnix bound
// under the kernel name bound, which ends in <dir>/.gozd-bind-*/<name>: the
// file is <dir>/<name> now.
func renamedSocketPath(bound string) (string, bool) {
	dir, name := filepath.Split(bound)
	dir = filepath.Clean(dir)
	if !strings.HasPrefix(filepath.Base(dir), bindDirPrefix) || name == "" {
		return "", false
	}
	return filepath.Join(filepath.Dir(dir), name), true
}

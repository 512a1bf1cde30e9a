package gozd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// listen binds the listener of group g: a tcp address, or a unix socket
// whose file is created with g.Chmod. A socket file left behind by a process
// that died (nobody accepts on it) is removed first; one that somebody still
// serves is an error, so two daemons never steal each other's socket.
func listen(g *GroupConfig) (net.Listener, error) {
	switch g.Network {
	case "tcp":
		ln, err := net.Listen("tcp", g.Address)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", g, err)
		}
		return ln, nil
	case "unix":
		if err := removeStaleSocket(g.Address); err != nil {
			return nil, fmt.Errorf("%s: %w", g, err)
		}
		ln, err := net.Listen("unix", g.Address)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", g, err)
		}
		if g.Chmod != 0 {
			if err := os.Chmod(g.Address, g.Chmod); err != nil {
				ln.Close()
				return nil, fmt.Errorf("%s: %w", g, err)
			}
		}
		return ln, nil
	}
	return nil, fmt.Errorf("%s: unknown network %q", g, g.Network)
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
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("descriptor %d for %s: %w", fd, name, err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	return ln, nil
}

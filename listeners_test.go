package gozd

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// staleSocket leaves a socket file at path that nobody listens on, as a
// killed daemon does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no stale socket file at %s: %v", path, err)
	}
}

// acceptOne checks that ln accepts a connection dialled to addr.
func acceptOne(t *testing.T, ln net.Listener, addr net.Addr) {
	t.Helper()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, err := net.DialTimeout(addr.Network(), addr.String(), serveWait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatalf("accept on %s: %v", addr, err)
		}
	case <-time.After(serveWait):
		t.Fatalf("nothing accepted on %s", addr)
	}
}

func unixGroup(path string) *GroupConfig {
	return &GroupConfig{Name: "app", Mode: ModeFCGI, Network: "unix", Address: path, Chmod: 0o600}
}

func TestListenUnixStaleSocket(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "app.sock")
	staleSocket(t, path)
	ln, err := listen(unixGroup(path))
	if err != nil {
		t.Fatalf("listen over a stale socket file: %v", err)
	}
	defer ln.Close()
	acceptOne(t, ln, ln.Addr())
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket file %v, %v; want mode 0600 from chmod", fi.Mode(), err)
	}
}

func TestListenUnixLiveSocket(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "app.sock")
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	ln, err := listen(unixGroup(path))
	if err == nil {
		ln.Close()
		t.Fatal("listen took the socket of a live listener")
	}
	if !errors.Is(err, ErrSocketInUse) {
		t.Errorf("error %q does not match ErrSocketInUse", err)
	}
	if !strings.Contains(err.Error(), `"app"`) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name group %q and path %s", err, "app", path)
	}
	// The live listener still owns its file.
	acceptOne(t, live, live.Addr())
}

func TestListenUnixNotASocket(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"regular file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink to a stale socket", func(t *testing.T, path string) {
			target := path + ".target"
			staleSocket(t, target)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(shortTempDir(t), "app.sock")
			tt.make(t, path)
			before, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := listen(unixGroup(path))
			if err == nil {
				ln.Close()
				t.Fatal("listen replaced something that is not a socket")
			}
			if !strings.Contains(err.Error(), `"app"`) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name group %q and path %s", err, "app", path)
			}
			after, err := os.Lstat(path)
			if err != nil || after.Mode() != before.Mode() || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
				t.Errorf("%s changed: before %v, after %v (%v)", path, before.Mode(), after, err)
			}
			if tt.name == "regular file" {
				if b, _ := os.ReadFile(path); string(b) != "keep me" {
					t.Errorf("file content now %q", b)
				}
			}
		})
	}
}

func TestListenTCPBusy(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	ln, err := listen(&GroupConfig{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: addr})
	if err == nil {
		ln.Close()
		t.Fatalf("listen on busy %s succeeded", addr)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %q does not wrap EADDRINUSE", err)
	}
	if !strings.Contains(err.Error(), `"web"`) || !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name group %q and address %s", err, "web", addr)
	}
}

// fdFlags returns the F_GETFL and F_GETFD flags of ln's descriptor.
func fdFlags(t *testing.T, ln net.Listener) (fl, fd int) {
	t.Helper()
	rc, err := ln.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flErr, fdErr error
	if err := rc.Control(func(s uintptr) {
		fl, flErr = unix.FcntlInt(s, unix.F_GETFL, 0)
		fd, fdErr = unix.FcntlInt(s, unix.F_GETFD, 0)
	}); err != nil {
		t.Fatal(err)
	}
	if flErr != nil || fdErr != nil {
		t.Fatalf("fcntl: %v, %v", flErr, fdErr)
	}
	return fl, fd
}

// TestListenerFD hands a listener over as the master does: the duplicate
// descriptor leaves the shared socket non-blocking, and the listener made
// from it accepts and does not unlink the socket file when closed.
func TestListenerFD(t *testing.T) {
	dir := shortTempDir(t)
	groups := []*GroupConfig{
		{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "app", Mode: ModeFCGI, Network: "unix", Address: filepath.Join(dir, "app.sock")},
	}
	for _, g := range groups {
		t.Run(g.Network, func(t *testing.T) {
			ln, err := listen(g)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			fd, err := dupListenerFD(ln)
			if err != nil {
				t.Fatal(err)
			}
			// The duplicate shares the open file description, so a
			// blocking switch would show on the original.
			if fl, _ := fdFlags(t, ln); fl&unix.O_NONBLOCK == 0 {
				t.Error("the listening socket is blocking after dupListenerFD")
			}
			dupFlags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			if err != nil {
				t.Fatal(err)
			}
			if dupFlags&unix.FD_CLOEXEC == 0 {
				t.Error("the duplicate descriptor is not close-on-exec")
			}

			inherited, err := listenerFromFD(fd, g.Name)
			if err != nil {
				t.Fatal(err)
			}
			if fl, _ := fdFlags(t, inherited); fl&unix.O_NONBLOCK == 0 {
				t.Error("the inherited listener is blocking")
			}
			if inherited.Addr().String() != ln.Addr().String() {
				t.Errorf("inherited listener on %s, want %s", inherited.Addr(), ln.Addr())
			}
			acceptOne(t, inherited, ln.Addr())
			if err := inherited.Close(); err != nil {
				t.Fatal(err)
			}
			if g.Network == "unix" {
				if _, err := os.Lstat(g.Address); err != nil {
					t.Errorf("closing the inherited listener removed the socket file: %v", err)
				}
			}
			// The original still serves the socket.
			acceptOne(t, ln, ln.Addr())
		})
	}
}

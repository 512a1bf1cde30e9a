package gozd

import (
	"errors"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

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

// dirEvent is one inotify event on a name in a watched directory.
type dirEvent struct {
	mask uint32
	name string
}

// watchDir watches dir for files appearing in it and changing attributes;
// the returned function returns the events so far, in order.
func watchDir(t *testing.T, dir string) func() []dirEvent {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ATTRIB); err != nil {
		t.Fatal(err)
	}
	var events []dirEvent
	return func() []dirEvent {
		buf := make([]byte, 64<<10)
		for {
			// The kernel queues an event within the call that causes
			// it, so whatever happened before this read is there.
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) {
				return events
			}
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				events = append(events, dirEvent{mask: ev.Mask, name: strings.TrimRight(string(name), "\x00")})
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
}

// nobodyAccount returns the uid and gid of the account nobody and the name
// of its group (nogroup on Debian).
func nobodyAccount(t *testing.T) (uid, gid int, group string) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no account nobody: %v", err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Skipf("no group %s for nobody: %v", u.Gid, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, g.Name
}

// TestListenUnixModeAtomic: the socket file appears at its path with its
// chmod and owner already set; nothing changes it there afterwards, as an
// inotify watch on its directory would see.
func TestListenUnixModeAtomic(t *testing.T) {
	tests := []struct {
		name     string
		chmod    os.FileMode
		owner    func(t *testing.T) (owner string, uid, gid int)
		stale    bool
		rootOnly bool
	}{
		{name: "chmod", chmod: 0o640},
		{name: "chmod over a stale socket", chmod: 0o604, stale: true},
		{name: "owner and chmod", chmod: 0o660, rootOnly: true, owner: func(t *testing.T) (string, int, int) {
			uid, gid, group := nobodyAccount(t)
			return "nobody:" + group, uid, gid
		}},
		{name: "owner group only", rootOnly: true, owner: func(t *testing.T) (string, int, int) {
			_, gid, group := nobodyAccount(t)
			return ":" + group, os.Geteuid(), gid
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rootOnly && os.Geteuid() != 0 {
				t.Skip("setting another owner needs root")
			}
			dir := shortTempDir(t)
			path := filepath.Join(dir, "app.sock")
			if tt.stale {
				staleSocket(t, path)
			}
			g := &GroupConfig{Name: "app", Mode: ModeFCGI, Network: "unix", Address: path, Chmod: tt.chmod}
			uid, gid := os.Geteuid(), os.Getegid()
			if tt.owner != nil {
				g.Owner, uid, gid = tt.owner(t)
			}
			events := watchDir(t, dir)
			ln, err := listen(g)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()

			appeared := false
			for _, ev := range events() {
				if ev.name != "app.sock" {
					continue
				}
				if ev.mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
					appeared = true
				}
				if ev.mask&unix.IN_ATTRIB != 0 && appeared {
					t.Errorf("the socket file's mode or owner changed after it appeared at %s (events %+v)", path, events())
					break
				}
			}
			if !appeared {
				t.Errorf("no socket file appeared at %s (events %+v)", path, events())
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode()&os.ModeSocket == 0 || (tt.chmod != 0 && fi.Mode().Perm() != tt.chmod) || int(st.Uid) != uid || int(st.Gid) != gid {
				t.Errorf("socket file %v owned by %d:%d; want a socket, mode %v, owner %d:%d", fi.Mode(), st.Uid, st.Gid, tt.chmod, uid, gid)
			}
			if ln.Addr().String() != path {
				t.Errorf("listener on %s, want %s", ln.Addr(), path)
			}
			acceptOne(t, ln, ln.Addr())
			if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
				t.Errorf("left behind in %s: %v", dir, left)
			}
			// The listener removes its file when closed, as
			// net.UnixListener does.
			ln.Close()
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket file after Close: %v; want it gone", err)
			}
		})
	}
}

// TestListenUnixLongPath: a socket path so long that the private directory's
// name would not fit in sun_path still binds, and renames into place.
func TestListenUnixLongPath(t *testing.T) {
	dir := shortTempDir(t)
	path := filepath.Join(dir, strings.Repeat("s", maxUnixPath-len(dir)-1))
	if len(path) != maxUnixPath {
		t.Fatalf("path is %d bytes, want %d", len(path), maxUnixPath)
	}
	ln, err := listen(&GroupConfig{Name: "app", Mode: ModeFCGI, Network: "unix", Address: path, Chmod: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("socket file %v, %v; want mode 0640", fi, err)
	}
	acceptOne(t, ln, ln.Addr())
}

// TestUpdateSocketFile changes the chmod and owner of a bound socket's file
// as a reload does, then takes them out again, and refuses to touch what was
// planted at the path instead of the socket.
func TestUpdateSocketFile(t *testing.T) {
	modeOwner := func(t *testing.T, path string) (os.FileMode, int, int) {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return fi.Mode(), int(st.Uid), int(st.Gid)
	}
	bound := func(t *testing.T) (*unixListener, *GroupConfig) {
		t.Helper()
		g := &GroupConfig{Name: "app", Mode: ModeFCGI, Network: "unix", Address: filepath.Join(shortTempDir(t), "app.sock")}
		ln, err := listen(g)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln.(*unixListener), g
	}
	// changed is g with chmod mode and, as root, owner nobody.
	changed := func(t *testing.T, g *GroupConfig, mode os.FileMode) GroupConfig {
		now := *g
		now.Chmod = mode
		if os.Geteuid() == 0 {
			_, _, group := nobodyAccount(t)
			now.Owner = "nobody:" + group
		}
		return now
	}

	t.Run("changed and taken out", func(t *testing.T) {
		ln, was := bound(t)
		path := was.Address
		created, uid, gid := modeOwner(t, path)
		now := changed(t, was, 0o606)
		if err := ln.updateSocketFile(was, &now); err != nil {
			t.Fatal(err)
		}
		wantUID, wantGID, _ := lookupOwner(now.Owner)
		if wantUID < 0 {
			wantUID, wantGID = uid, gid
		}
		if mode, u, g := modeOwner(t, path); mode.Perm() != 0o606 || mode&os.ModeSocket == 0 || u != wantUID || g != wantGID {
			t.Errorf("after the change: %v %d:%d; want mode 0606, owner %d:%d", mode, u, g, wantUID, wantGID)
		}
		acceptOne(t, ln, ln.Addr())

		back := *was
		if err := ln.updateSocketFile(&now, &back); err != nil {
			t.Fatal(err)
		}
		if mode, u, g := modeOwner(t, path); mode != created || u != uid || g != gid {
			t.Errorf("after taking chmod and owner out: %v %d:%d; want %v %d:%d as created", mode, u, g, created, uid, gid)
		}
	})

	planted := []struct {
		name  string
		plant func(t *testing.T, path string) (target string)
	}{
		{"symlink to a file", func(t *testing.T, path string) string {
			target := filepath.Join(filepath.Dir(path), "secret")
			if err := os.WriteFile(target, []byte("keep me"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			return target
		}},
		{"another socket", func(t *testing.T, path string) string {
			staleSocket(t, path)
			return path
		}},
	}
	for _, tt := range planted {
		t.Run(tt.name, func(t *testing.T) {
			ln, was := bound(t)
			path := was.Address
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			target := tt.plant(t, path)
			before, uid, gid := modeOwner(t, target)
			now := changed(t, was, 0o666)
			err := ln.updateSocketFile(was, &now)
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("updateSocketFile = %v; want an error naming %s", err, path)
			}
			if mode, u, g := modeOwner(t, target); mode != before || u != uid || g != gid {
				t.Errorf("%s changed: %v %d:%d, was %v %d:%d", target, mode, u, g, before, uid, gid)
			}
			if fi, err := os.Lstat(path); err != nil || (tt.name == "symlink to a file" && fi.Mode()&os.ModeSymlink == 0) {
				t.Errorf("%s now %v, %v", path, fi, err)
			}
		})
	}
}

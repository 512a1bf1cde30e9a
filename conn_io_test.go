package gozd

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// spyListener delivers its connections as spyConn, which records what
// reaches the *net.TCPConn's ReadFrom and WriteTo.
type spyListener struct {
	net.Listener
	readFrom chan io.Reader
	writeTo  chan io.Writer
}

func (l *spyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &spyConn{TCPConn: c.(*net.TCPConn), l: l}, nil
}

type spyConn struct {
	*net.TCPConn
	l *spyListener
}

func (c *spyConn) ReadFrom(r io.Reader) (int64, error) {
	c.l.readFrom <- r
	return c.TCPConn.ReadFrom(r)
}

func (c *spyConn) WriteTo(w io.Writer) (int64, error) {
	c.l.writeTo <- w
	return c.TCPConn.WriteTo(w)
}

// TestConnSendfile: io.Copy from a file to a gozd.Conn reaches the
// connection's own ReadFrom with the *os.File itself, the path on which Go
// uses sendfile; io.Copy from the Conn reaches its WriteTo.
func TestConnSendfile(t *testing.T) {
	dir := t.TempDir()
	content := strings.Repeat("gozd sendfile\n", 1<<14)
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	spy := &spyListener{Listener: ln, readFrom: make(chan io.Reader, 1), writeTo: make(chan io.Writer, 1)}
	td := newTestDaemon(t, tcpGroupConfig("files"))
	td.inherited = map[string]net.Listener{"files": spy}
	copied := make(chan error, 1)
	if err := td.HandleConn("files", func(c Conn) {
		f, err := os.Open(src)
		if err != nil {
			copied <- err
			return
		}
		defer f.Close()
		if _, err := io.Copy(c, f); err != nil {
			copied <- err
			return
		}
		if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			copied <- err
			return
		}
		// The peer half-closed too once it read everything; what it
		// sends before that lands in a file.
		out, err := os.Create(dst)
		if err != nil {
			copied <- err
			return
		}
		defer out.Close()
		_, err = io.Copy(out, c)
		copied <- err
	}); err != nil {
		t.Fatal(err)
	}
	td.start(context.Background())
	td.waitReady(t)

	c := dialTCP(t, ln.Addr())
	got, err := io.ReadAll(c) // EOF: the handler's CloseWrite
	if err != nil || string(got) != content {
		t.Fatalf("read %d bytes, %v; want the file's %d", len(got), err, len(content))
	}
	io.WriteString(c, "answer after the half-close\n")
	c.(*net.TCPConn).CloseWrite()
	select {
	case err := <-copied:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(serveWait):
		t.Fatal("the handler did not finish")
	}
	select {
	case r := <-spy.readFrom:
		// The file itself, or os's wrapper of it: net's ReadFrom uses
		// sendfile for a reader with the file's descriptor.
		if _, ok := r.(syscall.Conn); !ok {
			t.Errorf("the connection's ReadFrom got a %T; want the file (sendfile)", r)
		}
	default:
		t.Error("io.Copy to the Conn did not reach the connection's ReadFrom")
	}
	select {
	case w := <-spy.writeTo:
		if _, ok := w.(*os.File); !ok {
			t.Errorf("the connection's WriteTo got a %T; want the *os.File", w)
		}
	default:
		t.Error("io.Copy from the Conn did not reach the connection's WriteTo")
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "answer after the half-close\n" {
		t.Errorf("written after the half-close: %q, %v", b, err)
	}
}

// TestConnNetConn: NetConn reaches the *net.TCPConn, and using it leaves the
// connection tracked until the handler returns.
func TestConnNetConn(t *testing.T) {
	release := make(chan struct{})
	kinds := make(chan string, 1)
	td := serveTestDaemon(t, context.Background(), tcpGroupConfig("raw"), map[string]any{"raw": func(c Conn) {
		nc := c.(interface{ NetConn() net.Conn }).NetConn()
		tc, ok := nc.(*net.TCPConn)
		if ok {
			tc.SetNoDelay(false)
		}
		kinds <- fmtType(nc)
		io.WriteString(c, "hi\n")
		<-release
	}})
	c := dialTCP(t, td.addr(t, "raw"))
	select {
	case k := <-kinds:
		if k != "*net.TCPConn" {
			t.Fatalf("NetConn() is a %s", k)
		}
	case <-time.After(serveWait):
		t.Fatal("the handler did not get to NetConn")
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hi\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	gs := td.group(t, "raw")
	waitConns(t, gs, 1)
	close(release)
	waitConns(t, gs, 0)
}

func fmtType(v any) string {
	switch v.(type) {
	case *net.TCPConn:
		return "*net.TCPConn"
	case *net.UnixConn:
		return "*net.UnixConn"
	}
	return "something else"
}

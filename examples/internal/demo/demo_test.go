package demo

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gozd/gozd"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler("v2"))
	t.Cleanup(srv.Close)

	tests := []struct {
		path       string
		wantCode   int
		wantPrefix string
	}{
		{"/", http.StatusOK, "hello from gozd http v2 pid "},
		{"/version", http.StatusOK, "v2\n"},
		{"/sleep?d=10ms", http.StatusOK, "slept 10ms v2\n"},
		{"/sleep?d=0s", http.StatusOK, "slept 0s v2\n"},
		{"/sleep", http.StatusBadRequest, "d must be"},
		{"/sleep?d=2", http.StatusBadRequest, "d must be"},
		{"/sleep?d=-1s", http.StatusBadRequest, "d must be"},
		{"/sleep?d=61s", http.StatusBadRequest, "d must be"},
		{"/nowhere", http.StatusNotFound, "404"},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("GET %s: read body: %v", tt.path, err)
		}
		if resp.StatusCode != tt.wantCode || !strings.HasPrefix(string(body), tt.wantPrefix) {
			t.Errorf("GET %s = %d %q, want %d %q...", tt.path, resp.StatusCode, body, tt.wantCode, tt.wantPrefix)
		}
		if got := resp.Header.Get("X-Gozd-Version"); got != "v2" {
			t.Errorf("GET %s: X-Gozd-Version = %q, want v2", tt.path, got)
		}
	}
}

// testConn is a gozd.Conn over one end of a net.Pipe.
type testConn struct {
	net.Conn
	ctx context.Context
}

func (c testConn) Context() context.Context { return c.ctx }

// Handoff and Resumed: a pipe moves nowhere.
func (c testConn) Handoff([]byte) error    { return gozd.ErrNoHandoff }
func (c testConn) Resumed() ([]byte, bool) { return nil, false }

// startEcho runs Echo on one end of a pipe and returns the client end, a
// reader on it, the function that starts the drain, and a channel closed
// when Echo returns.
func startEcho(t *testing.T) (net.Conn, *bufio.Reader, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	client, server := net.Pipe()
	ctx, drain := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Echo(testConn{server, ctx})
	}()
	t.Cleanup(func() {
		drain()
		client.Close()
		<-done
	})
	return client, bufio.NewReader(client), drain, done
}

func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Echo did not return")
	}
}

func readLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	got, err := r.ReadString('\n')
	if got != want || err != nil {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
}

func TestEchoUntilClientCloses(t *testing.T) {
	client, r, _, done := startEcho(t)
	long := strings.Repeat("x", 10000) + "\n" // longer than the read buffer
	go client.Write([]byte("hello\nworld\n" + long))
	readLine(t, r, "hello\n")
	readLine(t, r, "world\n")
	readLine(t, r, long)
	client.Close()
	waitDone(t, done)
}

func TestEchoDrainClosesIdleConn(t *testing.T) {
	client, r, drain, done := startEcho(t)
	go client.Write([]byte("a\n"))
	readLine(t, r, "a\n")
	drain()
	waitDone(t, done)
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Fatalf("read after drain: %v, want io.EOF", err)
	}
}

func TestEchoDrainFinishesCurrentLine(t *testing.T) {
	client, r, drain, done := startEcho(t)
	// A pipe write returns once Echo has read it: "par" is in Echo's buffer.
	if _, err := client.Write([]byte("par")); err != nil {
		t.Fatal(err)
	}
	drain()
	go client.Write([]byte("tial\n"))
	readLine(t, r, "partial\n")
	waitDone(t, done)
}

package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gozd/gozd"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

const wait = 30 * time.Second

// syncBuffer collects a logger's output while the daemon writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestH2CHandler serves an http group with h2c.NewHandler, as users do to
// offer HTTP/2 without TLS, and talks to it with Go's HTTP/2 client over
// prior-knowledge h2c and with a plain HTTP/1.1 client.
func TestH2CHandler(t *testing.T) {
	cfg := &gozd.Config{Groups: []gozd.GroupConfig{{Name: "web", Mode: gozd.ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	var logs syncBuffer
	d, err := gozd.New(cfg, slog.New(slog.NewTextHandler(&logs, nil))) // INFO: as a worker without -v
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d", r.Proto, r.Method, len(body))
	})
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("h2c handler panics on purpose") })
	if err := d.Handle("web", h2c.NewHandler(mux, &http2.Server{})); err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Timeout: wait, Transport: &http.Transport{Protocols: &protos}}
	h1 := &http.Client{Timeout: wait}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()
	t.Cleanup(func() {
		// An h2c connection is a hijacked one to gozd: the drain waits
		// for its handler to end it, which the client's close does.
		h2.CloseIdleConnections()
		cancel()
		select {
		case <-served:
		case <-time.After(2 * wait):
			t.Error("Serve did not return")
		}
	})
	select {
	case <-d.Ready():
	case err := <-served:
		t.Fatalf("Serve: %v", err)
	case <-time.After(wait):
		t.Fatal("not ready")
	}
	addr := d.Addrs()["web"].String()

	for i, c := range []*http.Client{h2, h1, h2, h2} {
		resp, err := c.Post("http://"+addr+"/", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "HTTP/2.0 POST 5"
		if c == h1 {
			want = "HTTP/1.1 POST 5"
		}
		if err != nil || string(body) != want {
			t.Fatalf("request %d: %q, %v; want %q", i, body, err, want)
		}
	}

	// A panic inside an HTTP/2 stream is recovered by the HTTP/2 server,
	// which reports it through the group's server: the operator sees it.
	if resp, err := h2.Get("http://" + addr + "/panic"); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 500 {
			t.Fatalf("GET /panic: status %d", resp.StatusCode)
		}
	}
	deadline := time.Now().Add(wait)
	for !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "on purpose") {
		if time.Now().After(deadline) {
			t.Fatalf("the panic is not in the log at ERROR:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The connection still serves the next stream.
	if resp, err := h2.Get("http://" + addr + "/"); err != nil {
		t.Fatalf("after the panic: %v", err)
	} else {
		resp.Body.Close()
	}
	if c, err := net.DialTimeout("tcp", addr, wait); err != nil {
		t.Fatalf("the group stopped accepting: %v", err)
	} else {
		c.Close()
	}
}

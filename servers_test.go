package gozd

// In-process tests of server values: a tcp group served by a value with
// Serve(net.Listener), an http group served by the program's *http.Server.
// gRPC itself is driven in the integration module.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gozd/gozd/internal/testcert"
)

// lineServer is a server value as a program writes one: it serves a line
// echo on every connection its listener delivers, and has GracefulStop
// (finish the lines under way) and Stop (cut them), as *grpc.Server does.
type lineServer struct {
	gate     chan struct{} // Serve waits for it before its first Accept; nil: no wait
	mu       sync.Mutex
	conns    map[net.Conn]bool
	ln       net.Listener
	wg       sync.WaitGroup
	graceful atomic.Bool
	stopped  atomic.Bool
	quit     chan struct{}
}

func newLineServer() *lineServer {
	return &lineServer{conns: map[net.Conn]bool{}, quit: make(chan struct{})}
}

func (s *lineServer) Serve(ln net.Listener) error {
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-s.quit:
				return nil
			default:
				return err
			}
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := io.WriteString(c, line); err != nil {
					return
				}
				select {
				case <-s.quit:
					return // graceful: after the line under way
				default:
				}
			}
		})
	}
}

func (s *lineServer) GracefulStop() {
	s.graceful.Store(true)
	close(s.quit)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *lineServer) Stop() {
	s.stopped.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
}

func tcpGroupConfig(name string) *Config {
	return &Config{DrainTimeout: 5 * time.Second, Groups: []GroupConfig{{Name: name, Mode: ModeTCP, Network: "tcp", Address: "127.0.0.1:0"}}}
}

// TestServerValueTCP: a server value on a tcp group is ready only once it
// asks for a connection, serves the group's connections, and is drained
// with its GracefulStop: the line under way is answered.
func TestServerValueTCP(t *testing.T) {
	srv := newLineServer()
	srv.gate = make(chan struct{})
	td := newTestDaemon(t, tcpGroupConfig("lines"))
	if err := td.HandleServer("lines", srv); err != nil {
		t.Fatal(err)
	}
	td.start(context.Background())
	select {
	case <-td.Ready():
		t.Fatal("ready before the server asked its listener for a connection")
	case <-time.After(100 * time.Millisecond):
	}
	close(srv.gate)
	td.waitReady(t)

	c := dialTCP(t, td.addr(t, "lines"))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "one\n")
	if line, err := r.ReadString('\n'); err != nil || line != "one\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
	gs := td.group(t, "lines")
	waitConns(t, gs, 1)

	shut := make(chan error, 1)
	go func() { shut <- td.Shutdown(context.Background()) }()
	pollFor(t, "GracefulStop", srv.graceful.Load)
	// The connection's next line is still answered, then it is closed.
	fmt.Fprintf(c, "two\n")
	if line, err := r.ReadString('\n'); err != nil || line != "two\n" {
		t.Fatalf("echo during the drain: %q, %v", line, err)
	}
	expectEOF(t, c, r, "the connection after its last line")
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(serveWait):
		t.Fatal("Shutdown did not return")
	}
	if srv.stopped.Load() {
		t.Error("Stop was called though GracefulStop finished")
	}
	if err := td.waitServed(t); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// stuckServer's GracefulStop never returns while a connection is open: the
// drain must end at its deadline with Stop.
type stuckServer struct{ *lineServer }

func (s stuckServer) GracefulStop() {
	s.graceful.Store(true)
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServerValueDrainDeadline(t *testing.T) {
	srv := stuckServer{newLineServer()}
	td := serveTestDaemon(t, context.Background(), tcpGroupConfig("lines"), map[string]any{"lines": srv})
	c := dialTCP(t, td.addr(t, "lines"))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "one\n")
	if line, err := r.ReadString('\n'); err != nil || line != "one\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := td.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v; want the deadline", err)
	}
	if !srv.graceful.Load() || !srv.stopped.Load() {
		t.Errorf("GracefulStop called %v, Stop called %v; want both", srv.graceful.Load(), srv.stopped.Load())
	}
	expectEOF(t, c, r, "a connection cut at the deadline")
}

// TestServerValueServeReturns: a Serve that returns on its own stops the
// daemon with an error naming the group, so a worker exits and is replaced.
func TestServerValueServeReturns(t *testing.T) {
	cfg := tcpGroupConfig("broken")
	cfg.DrainTimeout = time.Second // the connection it left open
	td := newTestDaemon(t, cfg)
	srv := serverFunc(func(ln net.Listener) error {
		ln.Accept() // asks, so the group is ready
		return errors.New("out of cheese")
	})
	if err := td.HandleServer("broken", srv); err != nil {
		t.Fatal(err)
	}
	td.start(context.Background())
	dialTCP(t, td.addrWhenBound(t, "broken")).Close()
	err := td.waitServed(t)
	if err == nil || !strings.Contains(err.Error(), `group "broken"`) || !strings.Contains(err.Error(), "out of cheese") {
		t.Fatalf("Serve = %v; want the server's error naming the group", err)
	}
}

type serverFunc func(net.Listener) error

func (f serverFunc) Serve(ln net.Listener) error { return f(ln) }

// addrWhenBound waits until group has a listener and returns its address.
func (td *testDaemon) addrWhenBound(t *testing.T, group string) net.Addr {
	t.Helper()
	var a net.Addr
	pollFor(t, "the listener of "+group, func() bool {
		a = td.Addrs()[group]
		return a != nil
	})
	return a
}

// TestHTTPServerOnTCPGroup: an *http.Server is a server value too; on a tcp
// group it is drained with its Shutdown.
func TestHTTPServerOnTCPGroup(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(hello)}
	td := serveTestDaemon(t, context.Background(), tcpGroupConfig("web"), map[string]any{"web": srv})
	client := testClient(t, nil, false)
	if _, body := get(t, client, "http://"+td.addr(t, "web").String()+"/x"); body != "hello /x" {
		t.Fatalf("body %q", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), serveWait)
	defer cancel()
	if err := td.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	expectRefused(t, td.addr(t, "web"))
}

// TestHTTPServerSettings: an http group served by the program's *http.Server
// keeps its settings: WriteTimeout cuts a slow handler, MaxHeaderBytes
// answers 431, ConnState, BaseContext and ErrorLog are the program's.
func TestHTTPServerSettings(t *testing.T) {
	type ctxKey struct{}
	var states sync.Map
	var errLog bytes.Buffer
	var errLogMu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
		io.WriteString(w, "too late")
	})
	mux.HandleFunc("/twice", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.WriteHeader(http.StatusOK) // net/http logs it to ErrorLog
	})
	mux.HandleFunc("/ctx", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Context().Value(ctxKey{}))
	})
	srv := &http.Server{
		Handler:        mux,
		WriteTimeout:   100 * time.Millisecond,
		MaxHeaderBytes: 1 << 10,
		ConnState: func(c net.Conn, s http.ConnState) {
			if _, ok := c.(interface{ NetConn() net.Conn }).NetConn().(*net.TCPConn); ok {
				states.Store(s, true)
			}
		},
		BaseContext: func(net.Listener) context.Context { return context.WithValue(context.Background(), ctxKey{}, "base") },
		ErrorLog:    log.New(writerFunc(func(p []byte) (int, error) { errLogMu.Lock(); defer errLogMu.Unlock(); return errLog.Write(p) }), "", 0),
	}
	cfg := &Config{DrainTimeout: 5 * time.Second, Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": srv})
	base := "http://" + td.addr(t, "web").String()
	client := testClient(t, nil, false)

	if _, body := get(t, client, base+"/ctx"); body != "base" {
		t.Errorf("BaseContext: handler saw %q", body)
	}
	if resp, err := client.Get(base + "/slow"); err == nil {
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Errorf("GET /slow: %d %q; want the connection cut by WriteTimeout", resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("GET", base+"/ctx", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 8<<10))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET with a big header: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a header over MaxHeaderBytes: status %d; want 431", resp.StatusCode)
	}
	for _, s := range []http.ConnState{http.StateNew, http.StateActive, http.StateIdle} {
		if _, ok := states.Load(s); !ok {
			t.Errorf("the program's ConnState never saw %v", s)
		}
	}
	get(t, client, base+"/twice")
	pollFor(t, "the superfluous WriteHeader in the program's ErrorLog", func() bool {
		errLogMu.Lock()
		defer errLogMu.Unlock()
		return strings.Contains(errLog.String(), "superfluous")
	})
	// gozd's tracking still drains it.
	ctx, cancel := context.WithTimeout(context.Background(), serveWait)
	defer cancel()
	client.CloseIdleConnections()
	if err := td.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestHTTPSServerOwnCertificate: an https group whose *http.Server brings
// its own GetCertificate serves that certificate, not the group's.
func TestHTTPSServerOwnCertificate(t *testing.T) {
	dir := shortTempDir(t)
	key, cert, groupRoots := writeServeKeyPair(t, dir)
	own, err := testcert.New(24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ownPair, err := tls.X509KeyPair(own.CertPEM, own.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(hello),
		TLSConfig: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &ownPair, nil }},
	}
	plain := http.HandlerFunc(hello)
	cfg := &Config{Groups: []GroupConfig{
		{Name: "own", Mode: ModeHTTPS, Network: "tcp", Address: "127.0.0.1:0", Key: key, Cert: cert},
		{Name: "group", Mode: ModeHTTPS, Network: "tcp", Address: "127.0.0.1:0", Key: key, Cert: cert},
	}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"own": srv, "group": &http.Server{Handler: plain}})
	if _, body := get(t, testClient(t, own.Roots(), true), "https://"+td.addr(t, "own").String()+"/a"); body != "hello /a" {
		t.Errorf("own certificate: %q", body)
	}
	if _, err := testClient(t, groupRoots, true).Get("https://" + td.addr(t, "own").String() + "/"); err == nil {
		t.Error("the group's certificate was served though the server brings its own")
	}
	resp, body := get(t, testClient(t, groupRoots, true), "https://"+td.addr(t, "group").String()+"/b")
	if body != "hello /b" || resp.ProtoMajor != 2 {
		t.Errorf("the group's certificate: %s %q; want HTTP/2 (the https default)", resp.Proto, body)
	}
}

// TestServerValueKinds: a server value on a group it cannot serve is an
// error naming the group.
func TestServerValueKinds(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{
		{Name: "raw", Mode: ModeTCP, Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "app", Mode: ModeFCGI, Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "dns", Mode: ModeUDP, Network: "udp", Address: "127.0.0.1:0"},
	}}
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		group string
		h     any
		want  string
	}{
		{"web", newLineServer(), "serves a tcp group"},
		{"app", &http.Server{}, "group \"app\""},
		{"raw", func(PacketConn) {}, "group \"raw\""},
		{"dns", func(Conn) {}, "func(gozd.PacketConn)"},
		{"dns", newLineServer(), "group \"dns\""},
	} {
		err := registerAny(d, tc.group, tc.h)
		if !errors.Is(err, ErrHandlerKind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%T on %s: %v; want ErrHandlerKind with %q", tc.h, tc.group, err, tc.want)
		}
	}
	if err := d.HandleServer("raw", (*http.Server)(nil)); err == nil {
		t.Error("a nil *http.Server was accepted")
	}
}

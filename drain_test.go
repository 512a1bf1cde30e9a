package gozd

// Tests of the graceful drain: the connTracker on its own, then Shutdown,
// Close and a cancelled Serve on real sockets, including the zero-drop
// property for connections accepted before the drain whose request comes
// after it.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// closeRecorder is one end of a net.Pipe that records whether it was closed.
type closeRecorder struct {
	net.Conn
	closed atomic.Bool
}

func (c *closeRecorder) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

func newPipeConn(t *testing.T) *closeRecorder {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &closeRecorder{Conn: a}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestConnTrackerDrain(t *testing.T) {
	tr := newConnTracker()
	idle, busy, again := newPipeConn(t), newPipeConn(t), newPipeConn(t)
	for _, c := range []net.Conn{idle, busy, again} {
		tr.add(c)
	}
	tr.seal() // no more connections: done may close once the set is empty
	tr.setIdle(idle, true, false)
	tr.setIdle(again, true, false)
	tr.setIdle(again, false, false) // idle, then a new request came
	if idle.closed.Load() || tr.count() != 3 {
		t.Fatal("an idle connection was closed before the drain")
	}
	if isClosed(tr.done) {
		t.Fatal("done closed before the drain")
	}

	tr.drain()
	if !idle.closed.Load() {
		t.Error("drain left an idle connection open")
	}
	if busy.closed.Load() || again.closed.Load() {
		t.Error("drain closed a busy connection")
	}
	if n := tr.count(); n != 2 || isClosed(tr.done) {
		t.Fatalf("after drain: %d connections, done=%v; want 2, open", n, isClosed(tr.done))
	}

	// A busy connection turning idle during the drain is closed then.
	tr.setIdle(busy, true, false)
	if !busy.closed.Load() || tr.count() != 1 || isClosed(tr.done) {
		t.Fatalf("busy turned idle: closed=%v count=%d done=%v; want closed, 1, open", busy.closed.Load(), tr.count(), isClosed(tr.done))
	}
	// One its owner closes is forgotten; the last one closes done.
	again.Close()
	tr.remove(again)
	if !isClosed(tr.done) {
		t.Error("done still open with no connections left")
	}
	// Late reports about forgotten connections change nothing.
	tr.setIdle(again, true, false)
	tr.remove(idle)
	if tr.count() != 0 {
		t.Errorf("count %d after late reports, want 0", tr.count())
	}
}

func TestConnTrackerDoneNeedsDrainAndSeal(t *testing.T) {
	tr := newConnTracker()
	c := newPipeConn(t)
	tr.add(c)
	tr.remove(c)
	if isClosed(tr.done) {
		t.Fatal("done closed on an empty tracker that is not draining")
	}
	tr.drain()
	if isClosed(tr.done) {
		t.Fatal("done closed before seal: the accept loop may still add a connection")
	}
	late := newPipeConn(t)
	tr.add(late) // accepted while the accept loop wound down
	tr.seal()
	if isClosed(tr.done) || late.closed.Load() {
		t.Fatal("a connection accepted during the drain was dropped")
	}
	tr.setIdle(late, true, false)
	if !late.closed.Load() || !isClosed(tr.done) {
		t.Fatal("done not closed once the last connection went idle")
	}
	tr.drain() // twice is harmless
	tr.closeAll()
}

// TestConnTrackerLinger: an idle HTTP/2 connection of a draining group is
// closed only after h2Linger, and not if it turned busy meanwhile.
func TestConnTrackerLinger(t *testing.T) {
	tr := newConnTracker()
	h2, busyAgain := newPipeConn(t), newPipeConn(t)
	tr.add(h2)
	tr.add(busyAgain)
	tr.seal()
	tr.drain()
	tr.setIdle(h2, true, true)
	tr.setIdle(busyAgain, true, true)
	if h2.closed.Load() || busyAgain.closed.Load() {
		t.Fatal("a lingering connection was closed at once")
	}
	tr.setIdle(busyAgain, false, true) // a new stream came
	deadline := time.Now().Add(10 * h2Linger)
	for !h2.closed.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !h2.closed.Load() {
		t.Fatal("idle lingering connection not closed")
	}
	if busyAgain.closed.Load() {
		t.Fatal("a lingering connection that turned busy was closed")
	}
	tr.setIdle(busyAgain, true, true)
	deadline = time.Now().Add(10 * h2Linger)
	for !isClosed(tr.done) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !busyAgain.closed.Load() || !isClosed(tr.done) {
		t.Fatal("tracker not done after the last lingering connection closed")
	}
}

func TestConnTrackerCloseAll(t *testing.T) {
	tr := newConnTracker()
	idle, busy := newPipeConn(t), newPipeConn(t)
	tr.add(idle)
	tr.add(busy)
	tr.setIdle(idle, true, false)
	tr.closeAll()
	if !idle.closed.Load() || !busy.closed.Load() {
		t.Errorf("closeAll: idle closed=%v busy closed=%v; want both", idle.closed.Load(), busy.closed.Load())
	}
	if tr.count() != 0 || !isClosed(tr.done) {
		t.Errorf("after closeAll: count %d, done %v; want 0, closed", tr.count(), isClosed(tr.done))
	}
}

// rawHTTP sends a request on c and reads the response with its body.
func rawHTTP(t *testing.T, c net.Conn, r *bufio.Reader, path string) (*http.Response, string) {
	t.Helper()
	resp, body, err := rawHTTPErr(c, r, path)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// rawHTTPErr is rawHTTP for goroutines other than the test's.
func rawHTTPErr(c net.Conn, r *bufio.Reader, path string) (*http.Response, string, error) {
	c.SetDeadline(time.Now().Add(serveWait))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: gozd.test\r\n\r\n", path); err != nil {
		return nil, "", fmt.Errorf("GET %s: %w", path, err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: body: %w", path, err)
	}
	return resp, string(body), nil
}

// slowResult is the outcome of a request made in a goroutine of a test.
type slowResult struct {
	resp *http.Response
	body string
	err  error
}

// getAsync makes a request on c in a goroutine.
func getAsync(c net.Conn, path string) <-chan slowResult {
	ch := make(chan slowResult, 1)
	go func() {
		resp, body, err := rawHTTPErr(c, bufio.NewReader(c), path)
		ch <- slowResult{resp, body, err}
	}()
	return ch
}

// expectClosingOK waits for the response to a released slowHandler request:
// 200, its body, and "Connection: close".
func expectClosingOK(t *testing.T, ch <-chan slowResult) {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Errorf("in-flight request: %v", r.err)
		} else if r.resp.StatusCode != http.StatusOK || r.body != "slow done" || !r.resp.Close {
			t.Errorf("in-flight request: %s %q close=%v; want 200 %q with Connection: close", r.resp.Status, r.body, r.resp.Close, "slow done")
		}
	case <-time.After(serveWait):
		t.Fatal("in-flight request not answered")
	}
}

// expectEOF checks that the peer closed c: a read returns EOF, within a bound.
func expectEOF(t *testing.T, c net.Conn, r io.Reader, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(serveWait))
	if r == nil {
		r = c
	}
	n, err := r.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("%s: read %d bytes, %v; want EOF (closed by the daemon)", what, n, err)
	}
}

func dialTCP(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(addr.Network(), addr.String(), serveWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expectRefused checks that nothing accepts at addr any more.
func expectRefused(t *testing.T, addr net.Addr) {
	t.Helper()
	c, err := net.DialTimeout(addr.Network(), addr.String(), serveWait)
	if err == nil {
		c.Close()
		t.Errorf("dial %s succeeded after the drain started; want refused", addr)
	}
}

// slowHandler serves /slow by waiting for release (or the request's end),
// reporting on started that it has begun; other paths as hello.
type slowHandler struct {
	started chan struct{}
	release chan struct{}
}

func newSlowHandler() *slowHandler {
	return &slowHandler{started: make(chan struct{}, 16), release: make(chan struct{})}
}

func (h *slowHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/slow" {
		hello(w, r)
		return
	}
	h.started <- struct{}{}
	select {
	case <-h.release:
		io.WriteString(w, "slow done")
	case <-r.Context().Done():
	}
}

func (h *slowHandler) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-h.started:
	case <-time.After(serveWait):
		t.Fatalf("slow request not started within %v", serveWait)
	}
}

// shutdownAsync runs Shutdown(ctx) in a goroutine and returns its result.
func shutdownAsync(d *Daemon, ctx context.Context) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- d.Shutdown(ctx) }()
	return ch
}

func waitErr(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(serveWait):
		t.Fatalf("%s did not return within %v", what, serveWait)
		return nil
	}
}

func TestDrainHTTP(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	h := newSlowHandler()
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": h})
	addr := td.addr(t, "web")
	gs := td.group(t, "web")

	// An idle keep-alive connection.
	idle := dialTCP(t, addr)
	idleR := bufio.NewReader(idle)
	if resp, _ := rawHTTP(t, idle, idleR, "/"); resp.Close {
		t.Fatal("keep-alive response before the drain says Connection: close")
	}
	// A request in flight.
	slowDone := getAsync(dialTCP(t, addr), "/slow")
	h.waitStarted(t)
	// A connection accepted but whose request is not sent yet.
	fresh := dialTCP(t, addr)
	waitConns(t, gs, 3)

	shut := shutdownAsync(td.Daemon, context.Background())
	td.waitDrainStarted(t, gs)
	expectRefused(t, addr)
	expectEOF(t, idle, idleR, "idle keep-alive connection")

	// The request that arrives after the drain began is still answered.
	resp, body := rawHTTP(t, fresh, bufio.NewReader(fresh), "/late")
	if resp.StatusCode != http.StatusOK || body != "hello /late" || !resp.Close {
		t.Errorf("late request: %s %q close=%v; want 200 %q with Connection: close", resp.Status, body, resp.Close, "hello /late")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}

	close(h.release)
	expectClosingOK(t, slowDone)
	if err := waitErr(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := td.waitServed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Shutdown: got %v, want ErrClosed", err)
	}
}

// TestDrainHTTP2 drains an https group whose clients speak HTTP/2: an idle
// connection is closed, one with a stream in flight finishes it and closes
// itself (GOAWAY), and Shutdown returns.
func TestDrainHTTP2(t *testing.T) {
	dir := shortTempDir(t)
	key, cert, roots := writeServeKeyPair(t, dir)
	cfg := &Config{Groups: []GroupConfig{{Name: "secure", Mode: ModeHTTPS, Network: "tcp", Address: "127.0.0.1:0", Key: key, Cert: cert}}}
	h := newSlowHandler()
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"secure": h})
	url := "https://" + td.addr(t, "secure").String()
	gs := td.group(t, "secure")

	idleClient := testClient(t, roots, true)
	if resp, _ := get(t, idleClient, url+"/"); resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
	slowClient := testClient(t, roots, true)
	slowDone := make(chan string, 1)
	go func() {
		resp, err := slowClient.Get(url + "/slow")
		if err != nil {
			slowDone <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		slowDone <- fmt.Sprintf("%d %s %s", resp.StatusCode, resp.Proto, body)
	}()
	h.waitStarted(t)
	waitConns(t, gs, 2)

	shut := shutdownAsync(td.Daemon, context.Background())
	td.waitListenersClosed(t)
	waitConns(t, gs, 1) // the idle one is gone
	close(h.release)
	select {
	case got := <-slowDone:
		if want := "200 HTTP/2.0 slow done"; got != want {
			t.Errorf("in-flight HTTP/2 request: %s; want %s", got, want)
		}
	case <-time.After(serveWait):
		t.Fatal("in-flight HTTP/2 request not answered")
	}
	if err := waitErr(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := td.waitServed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Shutdown: got %v, want ErrClosed", err)
	}
}

func TestDrainTCP(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{{Name: "raw", Mode: ModeTCP, Network: "tcp", Address: "127.0.0.1:0"}}}
	started := make(chan struct{}, 1)
	handler := func(c Conn) {
		started <- struct{}{}
		// A long-lived connection ends its exchange when the drain starts;
		// gozd closes the connection once the handler returns.
		<-c.Context().Done()
		io.WriteString(c, "bye\n")
	}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"raw": handler})
	addr := td.addr(t, "raw")
	c := dialTCP(t, addr)
	select {
	case <-started:
	case <-time.After(serveWait):
		t.Fatal("handler not started")
	}

	shut := shutdownAsync(td.Daemon, context.Background())
	c.SetReadDeadline(time.Now().Add(serveWait))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); line != "bye\n" {
		t.Fatalf("got %q, %v; want the handler's goodbye after its context was cancelled", line, err)
	}
	expectEOF(t, c, r, "tcp connection after its handler returned")
	if err := waitErr(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	expectRefused(t, addr)
	if err := td.waitServed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Shutdown: got %v, want ErrClosed", err)
	}
}

// TestDrainTimeout: when Shutdown's context ends first, the connections
// still held are closed and Shutdown returns the context's error.
func TestDrainTimeout(t *testing.T) {
	tests := []struct {
		name string
		mode Mode
		hold func(t *testing.T, c net.Conn) // occupies c until it is closed
	}{
		{"http", ModeHTTP, func(t *testing.T, c net.Conn) {
			fmt.Fprintf(c, "GET /slow HTTP/1.1\r\nHost: gozd.test\r\n\r\n")
		}},
		{"tcp", ModeTCP, func(t *testing.T, c net.Conn) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Config{Groups: []GroupConfig{{Name: "g", Mode: tt.mode, Network: "tcp", Address: "127.0.0.1:0"}}}
			h := newSlowHandler() // never released
			var handler any = h
			if tt.mode == ModeTCP {
				// Ignores its context: reads until the connection is cut.
				handler = func(c Conn) {
					h.started <- struct{}{}
					io.Copy(io.Discard, c)
				}
			}
			td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"g": handler})
			c := dialTCP(t, td.addr(t, "g"))
			tt.hold(t, c)
			h.waitStarted(t)

			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := waitErr(t, shutdownAsync(td.Daemon, ctx), "Shutdown"); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown: got %v, want context.DeadlineExceeded", err)
			}
			expectEOF(t, c, nil, "held connection after the drain timed out")
			if err := td.waitServed(t); !errors.Is(err, ErrClosed) {
				t.Errorf("Serve: got %v, want ErrClosed", err)
			}
		})
	}
}

func TestDaemonCloseCutsRequests(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	h := newSlowHandler() // never released
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": h})
	addr := td.addr(t, "web")
	client := testClient(t, nil, false)
	got := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + addr.String() + "/slow")
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("got a response: %s", resp.Status)
		}
		got <- err
	}()
	h.waitStarted(t)
	if err := td.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := waitErr(t, got, "the cut request"); err == nil || err.Error() == "" {
		t.Errorf("in-flight request after Close: %v; want an error", err)
	}
	expectRefused(t, addr)
	if err := td.waitServed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close: got %v, want ErrClosed", err)
	}
}

// TestDrainHTTPUnreadAfterFiveSeconds: like the "fresh" connection of
// TestDrainHTTP, but accepted more than five seconds before the drain (still
// inside ReadHeaderTimeout).
// http.Server.SetKeepAlivesEnabled(false) would close such a connection (its
// closeIdleConns treats StateNew older than 5s as idle), which is why the
// drain adds "Connection: close" to responses instead.
func TestDrainHTTPUnreadAfterFiveSeconds(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": hello})
	c := dialTCP(t, td.addr(t, "web"))
	gs := td.group(t, "web")
	waitConns(t, gs, 1)
	// Not synchronisation: the connection must age past net/http's 5s
	// threshold (whole seconds, hence 6s) while staying under the 10s
	// ReadHeaderTimeout.
	time.Sleep(6 * time.Second)

	shut := shutdownAsync(td.Daemon, context.Background())
	td.waitDrainStarted(t, gs)
	c.SetDeadline(time.Now().Add(serveWait))
	fmt.Fprintf(c, "GET /late HTTP/1.1\r\nHost: gozd.test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Errorf("request on a connection accepted 6s before the drain: %v; want it answered", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("late request: %s", resp.Status)
		}
	}
	if err := waitErr(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestServeContextDrains(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	h := newSlowHandler()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	td := serveTestDaemon(t, ctx, cfg, map[string]any{"web": h})
	addr := td.addr(t, "web")
	slowDone := getAsync(dialTCP(t, addr), "/slow")
	h.waitStarted(t)

	cancel()
	td.waitDrainStarted(t, td.group(t, "web"))
	expectRefused(t, addr)
	close(h.release)
	expectClosingOK(t, slowDone)
	if err := td.waitServed(t); err != nil {
		t.Errorf("Serve after its context ended: got %v, want nil", err)
	}
}

// gatedListener, once armed, hands out accepted connections only when gate
// is closed, reporting each accept on accepted: it holds the accept loop
// between Accept and tracking the connection, where a drain may begin.
type gatedListener struct {
	net.Listener
	disarmed atomic.Bool // pass connections straight through
	accepted chan struct{}
	gate     chan struct{}
	openOnce sync.Once
}

// open lets held and later connections through.
func (l *gatedListener) open() { l.openOnce.Do(func() { close(l.gate) }) }

func newGatedListener(t *testing.T) *gatedListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &gatedListener{Listener: ln, accepted: make(chan struct{}, 1), gate: make(chan struct{})}
}

func (l *gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || l.disarmed.Load() {
		return c, err
	}
	l.accepted <- struct{}{}
	<-l.gate
	return c, nil
}

func (l *gatedListener) waitAccepted(t *testing.T) {
	t.Helper()
	select {
	case <-l.accepted:
	case <-time.After(serveWait):
		t.Fatal("connection not accepted")
	}
}

// serveGated serves one group g of mode on a gated listener.
func serveGated(t *testing.T, mode Mode, handler any, gated *gatedListener) *testDaemon {
	t.Helper()
	cfg := &Config{Groups: []GroupConfig{{Name: "g", Mode: mode, Network: "tcp", Address: "127.0.0.1:0"}}}
	td := newTestDaemon(t, cfg)
	t.Cleanup(gated.open) // before the daemon's cleanup, which waits for the accept loop
	td.inherited = map[string]net.Listener{"g": gated}
	if err := registerAny(td.Daemon, "g", handler); err != nil {
		t.Fatal(err)
	}
	td.start(context.Background())
	td.waitReady(t)
	return td
}

// TestDrainKeepAlivesOffAtOnce: while Shutdown waits for an accept loop,
// keep-alives are off already: idle connections are closed and a response
// that ends then says "Connection: close".
func TestDrainKeepAlivesOffAtOnce(t *testing.T) {
	gated := newGatedListener(t)
	gated.disarmed.Store(true)
	h := newSlowHandler()
	td := serveGated(t, ModeHTTP, h, gated)
	addr := gated.Addr()

	idle := dialTCP(t, addr)
	idleR := bufio.NewReader(idle)
	rawHTTP(t, idle, idleR, "/")
	slowDone := getAsync(dialTCP(t, addr), "/slow")
	h.waitStarted(t)
	gated.disarmed.Store(false)
	held := dialTCP(t, addr)
	gated.waitAccepted(t)

	shut := shutdownAsync(td.Daemon, context.Background())
	// Shutdown cannot get past the held accept loop, so this close comes
	// from turning keep-alives off.
	expectEOF(t, idle, idleR, "idle keep-alive connection")
	close(h.release)
	expectClosingOK(t, slowDone)
	gated.open()
	if resp, body := rawHTTP(t, held, bufio.NewReader(held), "/held"); resp.StatusCode != http.StatusOK || body != "hello /held" {
		t.Errorf("held connection: %s %q", resp.Status, body)
	}
	if err := waitErr(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestDrainAcceptRace: a connection the accept loop took off the backlog but
// had not yet tracked when Shutdown began belongs to this process alone; it
// is served, and Shutdown waits for it.
func TestDrainAcceptRace(t *testing.T) {
	for _, mode := range []Mode{ModeHTTP, ModeTCP} {
		t.Run(string(mode), func(t *testing.T) {
			gated := newGatedListener(t)
			var h any = hello
			if mode == ModeTCP {
				h = echoLines
			}
			td := serveGated(t, mode, h, gated)
			c := dialTCP(t, gated.Addr())
			gated.waitAccepted(t)
			gs := td.group(t, "g")
			shut := shutdownAsync(td.Daemon, context.Background())
			td.waitListenersClosed(t)
			// Give a Shutdown that does not wait for the accept loop the
			// time to drain the still empty group, so that the check below
			// catches it; one that waits never drains before the gate opens.
			deadline := time.Now().Add(200 * time.Millisecond)
			for time.Now().Before(deadline) && !trackerDraining(gs.tracker) {
				time.Sleep(time.Millisecond)
			}
			gated.open()
			waitConns(t, gs, 1)
			select {
			case err := <-shut:
				t.Fatalf("Shutdown returned %v while a connection it accepted was open and not yet served", err)
			default:
			}

			r := bufio.NewReader(c)
			if mode == ModeTCP {
				c.SetDeadline(time.Now().Add(serveWait))
				io.WriteString(c, "late\n")
				if line, err := r.ReadString('\n'); line != "late\n" {
					t.Fatalf("echo after the drain began: %q, %v", line, err)
				}
			} else {
				resp, body := rawHTTP(t, c, r, "/late")
				if resp.StatusCode != http.StatusOK || body != "hello /late" {
					t.Fatalf("request after the drain began: %s %q", resp.Status, body)
				}
			}
			c.Close() // the tcp handler returns; http is closed already
			if err := waitErr(t, shut, "Shutdown"); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
}

// FastCGI record types and roles used by the hand-driven client below.
const (
	fcgiTypeBeginRequest = 1
	fcgiTypeEndRequest   = 3
	fcgiTypeParams       = 4
	fcgiTypeStdin        = 5
	fcgiTypeStdout       = 6
	fcgiTypeStderr       = 7
	fcgiRoleResponder    = 1
	fcgiFlagKeepConn     = 1
)

func fcgiRecord(typ uint8, id uint16, content []byte) []byte {
	h := []byte{1, typ, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(h[2:], id)
	binary.BigEndian.PutUint16(h[4:], uint16(len(content)))
	return append(h, content...)
}

// fcgiGET encodes a complete GET request for path as a web server sends it.
func fcgiGET(id uint16, path string, keepConn bool) []byte {
	var flags byte
	if keepConn {
		flags = fcgiFlagKeepConn
	}
	var params []byte
	for _, kv := range [][2]string{
		{"REQUEST_METHOD", "GET"},
		{"SERVER_PROTOCOL", "HTTP/1.1"},
		{"SCRIPT_NAME", path},
		{"REQUEST_URI", path},
	} {
		params = append(params, byte(len(kv[0])), byte(len(kv[1])))
		params = append(params, kv[0]...)
		params = append(params, kv[1]...)
	}
	var b []byte
	b = append(b, fcgiRecord(fcgiTypeBeginRequest, id, []byte{0, fcgiRoleResponder, flags, 0, 0, 0, 0, 0})...)
	b = append(b, fcgiRecord(fcgiTypeParams, id, params)...)
	b = append(b, fcgiRecord(fcgiTypeParams, id, nil)...)
	b = append(b, fcgiRecord(fcgiTypeStdin, id, nil)...)
	return b
}

// fcgiDo sends a GET for path on c and returns the STDOUT stream of the
// response, read up to its END_REQUEST record.
func fcgiDo(t *testing.T, c net.Conn, path string, keepConn bool) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(serveWait))
	if _, err := c.Write(fcgiGET(1, path, keepConn)); err != nil {
		t.Fatalf("fcgi request %s: %v", path, err)
	}
	var stdout bytes.Buffer
	for {
		var h [8]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			t.Fatalf("fcgi response to %s: %v (so far %q)", path, err, stdout.String())
		}
		body := make([]byte, int(binary.BigEndian.Uint16(h[4:]))+int(h[6]))
		if _, err := io.ReadFull(c, body); err != nil {
			t.Fatalf("fcgi response to %s: %v", path, err)
		}
		content := body[:binary.BigEndian.Uint16(h[4:])]
		switch h[1] {
		case fcgiTypeStdout:
			stdout.Write(content)
		case fcgiTypeStderr:
			t.Errorf("fcgi stderr for %s: %q", path, content)
		case fcgiTypeEndRequest:
			return stdout.String()
		}
	}
}

func trackerDraining(tr *connTracker) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.draining.Load()
}

func idleConns(tr *connTracker) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for c, st := range tr.conns {
		if isIdle(c, st) {
			n++
		}
	}
	return n
}

// TestDrainFCGI drives FastCGI by hand, as a web server would: a connection
// accepted before the drain whose request arrives after it is answered; a
// kept-open connection idle after its request is closed when the drain
// starts.
func TestDrainFCGI(t *testing.T) {
	sock := filepath.Join(shortTempDir(t), "app.sock")
	cfg := &Config{Groups: []GroupConfig{{Name: "app", Mode: ModeFCGI, Network: "unix", Address: sock}}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"app": hello})
	addr := td.addr(t, "app")
	gs := td.group(t, "app")

	keep := dialTCP(t, addr)
	const wantBody = "\r\n\r\nhello /first"
	if out := fcgiDo(t, keep, "/first", true); !bytes.HasSuffix([]byte(out), []byte(wantBody)) {
		t.Fatalf("first response %q, want body %q", out, "hello /first")
	}
	fresh := dialTCP(t, addr)
	waitConns(t, gs, 2)
	pollFor(t, "the kept connection idle", func() bool { return idleConns(gs.tracker) == 1 })

	shut := shutdownAsync(td.Daemon, context.Background())
	td.waitListenersClosed(t)
	expectRefused(t, addr)
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left after the listener closed: %v", err)
	}
	expectEOF(t, keep, nil, "idle kept FastCGI connection")

	if out := fcgiDo(t, fresh, "/late", false); !bytes.HasSuffix([]byte(out), []byte("hello /late")) {
		t.Errorf("late response %q, want body %q", out, "hello /late")
	}
	expectEOF(t, fresh, nil, "FastCGI connection after its request without keep-conn")
	if err := waitErr(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := td.waitServed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Shutdown: got %v, want ErrClosed", err)
	}
}

// TestDrainHTTPEmptyResponse: a handler that writes nothing, finishing during
// the drain, still answers with "Connection: close", so its client does not
// reuse a connection about to be closed.
func TestDrainHTTPEmptyResponse(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, 1)
	empty := func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	}
	cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": empty})
	done := getAsync(dialTCP(t, td.addr(t, "web")), "/empty")
	select {
	case <-started:
	case <-time.After(serveWait):
		t.Fatal("request not started")
	}
	shut := shutdownAsync(td.Daemon, context.Background())
	td.waitDrainStarted(t, td.group(t, "web"))
	close(release)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.resp.StatusCode != http.StatusOK || !r.resp.Close {
			t.Errorf("empty response during the drain: %s close=%v; want 200 with Connection: close", r.resp.Status, r.resp.Close)
		}
	case <-time.After(serveWait):
		t.Fatal("empty response not answered")
	}
	if err := waitErr(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestDrainHTTPHalfSentRequest: a keep-alive connection whose next request
// is halfway in when the drain starts (net/http still calls it idle) is not
// closed under it: the request is answered.
func TestDrainHTTPHalfSentRequest(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": hello})
	gs := td.group(t, "web")
	c := dialTCP(t, td.addr(t, "web"))
	r := bufio.NewReader(c)
	rawHTTP(t, c, r, "/first")
	if _, err := io.WriteString(c, "GET /second HTTP/1.1\r\nHo"); err != nil {
		t.Fatal(err)
	}
	pollFor(t, "the half request read by the server", func() bool {
		gs.tracker.mu.Lock()
		defer gs.tracker.mu.Unlock()
		for conn := range gs.tracker.conns {
			if hc := asHTTPConn(conn); hc != nil && hc.status.Load()&statusRead != 0 {
				return true
			}
		}
		return false
	})
	shut := shutdownAsync(td.Daemon, context.Background())
	td.waitDrainStarted(t, gs)
	if _, err := io.WriteString(c, "st: gozd.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	expectAnswered(t, c, r, "/second", "request half sent when the drain began")
	if err := waitErr(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestDrainHijacked: a connection a handler hijacked (a websocket, say) is
// not cut by the drain, which waits until the handler closes it.
func TestDrainHijacked(t *testing.T) {
	hijack := func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString(line)
			brw.Flush()
		}
	}
	cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": hijack})
	c := dialTCP(t, td.addr(t, "web"))
	c.SetDeadline(time.Now().Add(serveWait))
	r := bufio.NewReader(c)
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: gozd.test\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	echo := func(s string) {
		t.Helper()
		io.WriteString(c, s+"\n")
		got, err := r.ReadString('\n')
		if err != nil || got != s+"\n" {
			t.Fatalf("echo %q: got %q, %v", s, got, err)
		}
	}
	echo("before")
	shut := shutdownAsync(td.Daemon, context.Background())
	td.waitDrainStarted(t, td.group(t, "web"))
	echo("during the drain")
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a hijacked connection was open", err)
	default:
	}
	c.Close()
	if err := waitErr(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// The response to /first is complete at the client while the handler still
// runs; the client sends /second at once (keep-alive, no pipelining), then the
// handler returns. net/http's background read has taken /second's first byte
// (plain) or its whole TLS record before StateIdle clears httpConn.read.
func drainNextRequest(t *testing.T, useTLS bool) {
	release := make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
			<-release
			return
		}
		io.WriteString(w, "hello "+r.URL.Path)
	}
	cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	if useTLS {
		dir := shortTempDir(t)
		key, cert, _ := writeServeKeyPair(t, dir)
		cfg.Groups[0].Mode, cfg.Groups[0].Key, cfg.Groups[0].Cert = ModeHTTPS, key, cert
	}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": http.HandlerFunc(h)})
	gs := td.group(t, "web")
	var c net.Conn = dialTCP(t, td.addr(t, "web"))
	if useTLS {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c = tc
	}
	c.SetDeadline(time.Now().Add(serveWait))
	r := bufio.NewReader(c)
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	shut := shutdownAsync(td.Daemon, context.Background())
	td.waitDrainStarted(t, gs)
	io.WriteString(c, "GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
	// Give net/http's background read the chance to take the request
	// before the handler returns; on a slow machine the test is only
	// less sharp, it cannot fail for it.
	time.Sleep(50 * time.Millisecond)
	close(release)
	expectAnswered(t, c, r, "/second", "keep-alive request sent during the drain, after a complete response")
	if err := waitErr(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestDrainHTTPNextRequest: a keep-alive client that sends its next request
// right after a complete response, while the handler is still finishing and
// the drain has begun, gets it answered, in clear text and over TLS.
func TestDrainHTTPNextRequest(t *testing.T) {
	t.Run("plain", func(t *testing.T) { drainNextRequest(t, false) })
	t.Run("tls", func(t *testing.T) { drainNextRequest(t, true) })
}

// expectAnswered reads the response to GET path from r: 200, "hello PATH"
// and Connection: close, as every response of a draining group says.
func expectAnswered(t *testing.T, c net.Conn, r *bufio.Reader, path, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(serveWait))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("%s: %v; want it answered", what, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "hello " + path; resp.StatusCode != http.StatusOK || string(body) != want || !resp.Close {
		t.Errorf("%s: got %s %q close=%v; want 200 %q with Connection: close", what, resp.Status, body, resp.Close, want)
	}
}

// TestStopAcceptingThenDrain: a worker told to drain stops accepting on its
// http and tcp-handler groups at once, and nothing else changes: their
// connections keep being served, a server value's group still accepts (it
// stops with the drain, which cancels its context first) and does not count
// as failed, Serve goes on, and the drain that follows ends as usual.
func TestStopAcceptingThenDrain(t *testing.T) {
	cfg := &Config{DrainTimeout: 5 * time.Second, Groups: []GroupConfig{
		{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "raw", Mode: ModeTCP, Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "lines", Mode: ModeTCP, Network: "tcp", Address: "127.0.0.1:0"},
	}}
	echo := func(c Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(c, line)
		}
	}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{
		"web": http.HandlerFunc(hello), "raw": echo, "lines": Server(newLineServer()),
	})
	line := func(c net.Conn, r *bufio.Reader, s string) {
		t.Helper()
		c.SetDeadline(time.Now().Add(serveWait))
		fmt.Fprintf(c, "%s\n", s)
		if got, err := r.ReadString('\n'); err != nil || got != s+"\n" {
			t.Fatalf("echo of %q: %q, %v", s, got, err)
		}
	}
	web := dialTCP(t, td.addr(t, "web"))
	webR := bufio.NewReader(web)
	if resp, body := rawHTTP(t, web, webR, "/one"); resp.StatusCode != 200 || body != "hello /one" {
		t.Fatalf("GET /one: %s %q", resp.Status, body)
	}
	raw := dialTCP(t, td.addr(t, "raw"))
	rawR := bufio.NewReader(raw)
	line(raw, rawR, "one")

	td.stopAccepting()
	expectRefused(t, td.addr(t, "web"))
	expectRefused(t, td.addr(t, "raw"))
	lines := dialTCP(t, td.addr(t, "lines"))
	line(lines, bufio.NewReader(lines), "still accepting")
	if resp, body := rawHTTP(t, web, webR, "/two"); resp.StatusCode != 200 || body != "hello /two" {
		t.Errorf("GET /two on the open connection: %s %q", resp.Status, body)
	}
	line(raw, rawR, "two")
	select {
	case err := <-td.served:
		t.Fatalf("Serve returned once the listeners were closed: %v", err)
	case <-time.After(100 * time.Millisecond):
	}

	// The tcp clients leave; the idle keep-alive connection is the
	// drain's to close.
	raw.Close()
	lines.Close()
	if err := waitErr(t, shutdownAsync(td.Daemon, context.Background()), "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	expectEOF(t, web, webR, "the idle keep-alive connection after the drain")
	expectRefused(t, td.addr(t, "lines"))
	if err := td.waitServed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Shutdown: got %v, want ErrClosed", err)
	}
}

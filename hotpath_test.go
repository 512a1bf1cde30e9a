package gozd

// Tests of the per-request path: the recycled response writer wrapper, and
// the connection counts the report reads instead of walking the tracker.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHTTPWriterRecycledUnderDrain: many clients on keep-alive connections
// send requests whose handlers overlap, flush part way and sometimes write
// nothing, while the group drains. Every response carries its own request's
// id in header and body, and every one whose handler started once draining
// says Connection: close: a wrapper shared by two requests, or one that kept
// a previous request's state, shows here.
func TestHTTPWriterRecycledUnderDrain(t *testing.T) {
	var d *Daemon
	var gs *groupServer
	handler := func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		if gs.draining.Load() {
			w.Header().Set("X-Draining", "1")
		}
		w.Header().Set("X-Id", id)
		n, _ := strconv.Atoi(id)
		switch n % 3 {
		case 0: // nothing written: net/http sends the header after the handler
			return
		case 1:
			io.WriteString(w, "id="+id+";")
			http.NewResponseController(w).Flush()
			time.Sleep(time.Duration(n%4) * time.Millisecond)
			io.WriteString(w, "end")
		case 2:
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte("id=" + id + ";end"))
		}
	}
	cfg := &Config{DrainTimeout: serveWait, Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": handler})
	d, gs = td.Daemon, td.group(t, "web")
	addr := td.addr(t, "web").String()

	const clients = 16
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		served   int
		closing  int
		failures []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	shutdownAt := make(chan struct{})
	var shutOnce sync.Once
	for client := range clients {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fail("client %d: %v", client, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(serveWait))
			br := bufio.NewReader(c)
			for i := 0; ; i++ {
				id := client*100000 + i
				fmt.Fprintf(c, "GET /?id=%d HTTP/1.1\r\nHost: gozd.test\r\n\r\n", id)
				if _, err := br.Peek(1); errors.Is(err, io.EOF) && isClosed(d.Draining()) {
					// An idle connection the drain closed as this
					// request was sent (there is no new worker to
					// move it to here): not what this test is about.
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail("request %d: %v", id, err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				want, wantStatus := "id="+strconv.Itoa(id)+";end", http.StatusOK
				switch id % 3 {
				case 0:
					want = ""
				case 2:
					wantStatus = http.StatusAccepted
				}
				if err != nil || resp.StatusCode != wantStatus || string(body) != want || resp.Header.Get("X-Id") != strconv.Itoa(id) {
					fail("request %d: %d %q X-Id %q (%v), want %d %q", id, resp.StatusCode, body, resp.Header.Get("X-Id"), err, wantStatus, want)
					return
				}
				if resp.Header.Get("X-Draining") != "" && !resp.Close {
					fail("request %d: started while draining, answered without Connection: close", id)
				}
				mu.Lock()
				served++
				if served == clients*50 {
					shutOnce.Do(func() { close(shutdownAt) })
				}
				mu.Unlock()
				if resp.Close {
					mu.Lock()
					closing++
					mu.Unlock()
					return
				}
			}
		})
	}
	select {
	case <-shutdownAt:
	case <-time.After(serveWait):
		t.Fatalf("fewer than %d requests served within %v: %v", clients*50, serveWait, failures)
	}
	shut := shutdownAsync(td.Daemon, context.Background())
	wg.Wait()
	if err := waitErr(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d responses, %d of them closing", served, closing)
}

// TestHTTPWriterKeptAfterReturn: a handler that keeps its ResponseWriter
// and uses it after returning (a bug) gets errors, and the connection's next
// response is whole.
func TestHTTPWriterKeptAfterReturn(t *testing.T) {
	kept := make(chan http.ResponseWriter, 1)
	handler := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keep" {
			kept <- w
		}
		io.WriteString(w, "path="+r.URL.Path)
	}
	cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": handler})
	c := dialTCP(t, td.addr(t, "web"))
	c.SetDeadline(time.Now().Add(serveWait))
	br := bufio.NewReader(c)
	if _, body := rawHTTP(t, c, br, "/keep"); body != "path=/keep" {
		t.Fatalf("/keep: %q", body)
	}
	w := <-kept
	if _, err := io.WriteString(w, "stale"); !errors.Is(err, errHandlerReturned) {
		t.Errorf("Write after the handler returned: %v, want %v", err, errHandlerReturned)
	}
	w.Header().Set("X-Stale", "1")
	w.WriteHeader(http.StatusTeapot)
	w.(http.Flusher).Flush()
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err == nil {
		t.Error("ResponseController.Flush after the handler returned: no error")
	}
	if err := rc.SetWriteDeadline(time.Now()); err == nil {
		t.Error("ResponseController.SetWriteDeadline after the handler returned: no error")
	}
	if _, _, err := rc.Hijack(); err == nil {
		t.Error("ResponseController.Hijack after the handler returned: no error")
	}
	resp, body := rawHTTP(t, c, br, "/next")
	if body != "path=/next" || resp.StatusCode != http.StatusOK || resp.Header.Get("X-Stale") != "" {
		t.Errorf("/next after the stale use: %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

// walkStats counts a tracker's connections by walking them, as the report
// once did: the reference the counts must agree with.
func walkStats(tr *connTracker) map[string]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	kinds := map[string]int{}
	for c, st := range tr.conns {
		kind, status := kindOf(c)
		switch {
		case kind == trackedTCP:
			kinds[kindTCP]++
		case kind == trackedFCGI:
			kinds[kindFCGI]++
		case kind == trackedHTTP && status.Load()&statusHijacked != 0:
			kinds[kindHijacked]++
		case kind == trackedHTTP && status.Load()&statusIdle != 0:
			kinds[kindHTTPIdle]++
		case kind == trackedHTTP:
			kinds[kindHTTPActive]++
		case st.idle:
			kinds[kindOtherIdle]++
		default:
			kinds[kindOther]++
		}
	}
	return kinds
}

// TestConnCounts: the counts the report reads agree with the connections
// open — busy, idle, hijacked, of every kind — and are back to zero once
// they are all closed.
func TestConnCounts(t *testing.T) {
	release := make(chan struct{})
	web := func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			<-release
		case "/hijack":
			c, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			io.Copy(io.Discard, c) // until the client closes
			c.Close()
			return
		}
		io.WriteString(w, "ok")
	}
	app := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	}
	cfg := &Config{Groups: []GroupConfig{
		{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "echo", Mode: ModeTCP, Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "app", Mode: ModeFCGI, Network: "unix", Address: filepath.Join(shortTempDir(t), "app.sock")},
	}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": web, "echo": echoLines, "app": app})

	// want is what the report must say of each group.
	check := func(what string, want map[string]map[string]int) {
		t.Helper()
		var s *workerStats
		var last string
		deadline := time.Now().Add(serveWait)
		for {
			s = td.stats()
			last = ""
			for _, g := range s.Groups {
				gs := td.group(t, g.Name)
				walked := walkStats(gs.tracker)
				if fmt.Sprint(g.Kinds) != fmt.Sprint(want[g.Name]) || fmt.Sprint(walked) != fmt.Sprint(want[g.Name]) {
					last += fmt.Sprintf("group %s: counted %v, walked %v, want %v; ", g.Name, g.Kinds, walked, want[g.Name])
				}
				idle := g.Kinds[kindHTTPIdle] + g.Kinds[kindOtherIdle]
				if g.Name == "app" {
					idle = want["app idle"]["n"]
				}
				if g.Idle != idle || g.Active+g.Idle != g.connections() || g.connections() != gs.tracker.count() {
					last += fmt.Sprintf("group %s: %d active, %d idle, %d tracked; ", g.Name, g.Active, g.Idle, gs.tracker.count())
				}
			}
			if last == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s", what, last)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	check("nothing open", map[string]map[string]int{})

	webAddr, echoAddr := td.addr(t, "web"), td.addr(t, "echo")
	var closers []io.Closer
	const n = 5
	// HTTP: n idle after a request, n busy with /slow, one hijacked, one
	// just accepted (busy: no request yet).
	for range n {
		c := dialTCP(t, webAddr)
		c.SetDeadline(time.Now().Add(serveWait))
		rawHTTP(t, c, bufio.NewReader(c), "/")
		closers = append(closers, c)
	}
	for range n {
		c := dialTCP(t, webAddr)
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: gozd.test\r\n\r\n")
		closers = append(closers, c)
	}
	hj := dialTCP(t, webAddr)
	io.WriteString(hj, "GET /hijack HTTP/1.1\r\nHost: gozd.test\r\n\r\n")
	closers = append(closers, hj)
	closers = append(closers, dialTCP(t, webAddr))
	// tcp: n sessions.
	for range n {
		c := dialTCP(t, echoAddr)
		c.SetDeadline(time.Now().Add(serveWait))
		io.WriteString(c, "hi\n")
		bufio.NewReader(c).ReadString('\n')
		closers = append(closers, c)
	}
	// FastCGI: n kept connections idle after a request, one busy.
	appAddr := td.addr(t, "app")
	for range n {
		c := dialTCP(t, appAddr)
		if got := fcgiDo(t, c, "/", true); !strings.HasSuffix(got, "ok") {
			t.Fatalf("fcgi: %q", got)
		}
		closers = append(closers, c)
	}
	fc := dialTCP(t, appAddr)
	fc.Write(fcgiGET(1, "/slow", true))
	closers = append(closers, fc)

	check("connections open", map[string]map[string]int{
		"web":      {kindHTTPIdle: n, kindHTTPActive: n + 1, kindHijacked: 1},
		"echo":     {kindTCP: n},
		"app":      {kindFCGI: n + 1},
		"app idle": {"n": n},
	})
	close(release)
	check("slow requests answered", map[string]map[string]int{
		"web":      {kindHTTPIdle: 2 * n, kindHTTPActive: 1, kindHijacked: 1},
		"echo":     {kindTCP: n},
		"app":      {kindFCGI: n + 1},
		"app idle": {"n": n + 1},
	})
	for _, c := range closers {
		c.Close()
	}
	check("every connection closed", map[string]map[string]int{})
}

// TestConnCountsChurn: connections opened, used and closed by many clients
// at once leave every count at zero.
func TestConnCountsChurn(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": hello})
	addr := td.addr(t, "web")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				c, err := net.Dial("tcp", addr.String())
				if err != nil {
					t.Error(err)
					return
				}
				c.SetDeadline(time.Now().Add(serveWait))
				br := bufio.NewReader(c)
				for range 3 {
					if _, _, err := rawHTTPErr(c, br, "/"); err != nil {
						t.Error(err)
						break
					}
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	gs := td.group(t, "web")
	pollFor(t, "every connection forgotten", func() bool { return gs.tracker.count() == 0 })
	n := &gs.tracker.counts
	for name, v := range map[string]int64{"http": n.http.Load(), "http idle": n.httpIdle.Load(), "hijacked": n.hijacked.Load()} {
		if v != 0 {
			t.Errorf("%s count %d after every connection closed", name, v)
		}
	}
	if g := gs.tracker.stats("web"); g.Active != 0 || g.Idle != 0 || g.Kinds != nil || g.Accepted != 8*25 {
		t.Errorf("stats after every connection closed: %+v", g)
	}
}

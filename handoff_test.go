package gozd_test

// Reloads that no client can notice, over a link with latency: keep-alive
// connections move to the new worker instead of being closed under a
// request already on the wire.

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gozd/gozd"
	"github.com/gozd/gozd/internal/latencyproxy"
)

// startLatencyProxy puts a proxy delaying each direction by delay in front
// of addr; the test's cleanup closes it.
func startLatencyProxy(t *testing.T, network, addr string, delay time.Duration) *latencyproxy.Proxy {
	t.Helper()
	p, err := latencyproxy.Start(network, addr, delay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// httpPostVersion POSTs a small body to url and returns the version and pid
// that answered. Go's client does not retry a POST that fails on a reused
// connection, so a keep-alive connection closed under it shows.
func httpPostVersion(c *http.Client, url string) (string, int, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader("hello"))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "text/plain")
	return httpVersionReq(c, req)
}

// postGens returns n generators, each POSTing on its own keep-alive
// connection.
func postGens(t *testing.T, n int, url string) []*loadGen {
	var gens []*loadGen
	for i := range n {
		c := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		t.Cleanup(c.CloseIdleConnections)
		gens = append(gens, &loadGen{name: fmt.Sprintf("keep-alive POST %d", i), do: func(int) (string, error) {
			v, _, err := httpPostVersion(c, url)
			return v, err
		}})
	}
	return gens
}

// getGens returns n generators, each GETting on its own keep-alive
// connection. Go's client retries a GET that meets a connection closed
// under it on a new connection, which hides the close from the caller: a
// GET that needed a new connection after the first counts as failed.
func getGens(t *testing.T, n int, url string) []*loadGen {
	var gens []*loadGen
	for i := range n {
		c := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		t.Cleanup(c.CloseIdleConnections)
		var dialed atomic.Int32
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			if !info.Reused {
				dialed.Add(1)
			}
		}}
		gens = append(gens, &loadGen{name: fmt.Sprintf("keep-alive GET %d", i), do: func(int) (string, error) {
			req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
			if err != nil {
				return "", err
			}
			v, _, err := httpVersionReq(c, req)
			if err == nil && dialed.Load() > 1 {
				err = fmt.Errorf("GET %s needed a new connection: the kept one was closed", url)
				dialed.Store(1)
			}
			return v, err
		}})
	}
	return gens
}

// reloadTimes sends the master n SIGHUPs, each once the reload before has
// made its new worker ready and a pause has passed, so every one is a
// reload of its own and finds connections in use.
func (d *masterProcess) reloadTimes(n int, pause time.Duration) {
	d.t.Helper()
	ready := d.logCount(`msg="worker ready"`)
	for i := 1; i <= n; i++ {
		d.proc.signal(syscall.SIGHUP)
		d.waitLog(`msg="worker ready"`, ready+i)
		time.Sleep(pause)
	}
}

// TestHandoffKeepAlivePOSTOverLatency is the reload a user sees across a
// real network: keep-alive POSTs through a link of 15 ms each way, across
// ten reloads. A connection closed by the old worker while idle is crossed
// by the client's next request on the wire, and Go's client does not retry
// a POST: every such close is a failed request.
//
// GETs go alongside: Go's client would retry those on a new connection,
// so for them the new connection is the failure.
func TestHandoffKeepAlivePOSTOverLatency(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), webConf)
	d.worker()
	proxy := startLatencyProxy(t, "tcp", d.addrs["web"], 15*time.Millisecond)
	url := "http://" + proxy.Addr() + "/"
	load := startLoadGoing(t, 40*time.Millisecond, append(postGens(t, 12, url), getGens(t, 4, url)...)...)
	d.reloadTimes(10, 300*time.Millisecond)
	load.check(t)
}

// webConf is a daemon with one http group, web, that gives its old workers
// time to drain: a test that sees one exit at once knows it did not wait.
const webConf = `
drain_timeout 1m
[web]
mode   http
listen 127.0.0.1:0
`

// startHTTPSMaster starts a daemon with one https group, web, and returns
// it and the path of the certificate to trust.
func startHTTPSMaster(t *testing.T, drainTimeout string) (*masterProcess, string) {
	t.Helper()
	dir := newDaemonDir(t)
	key, cert := writeKeyPair(t, dir)
	return startMaster(t, dir, fmt.Sprintf("drain_timeout %s\n[web]\nmode https\nlisten 127.0.0.1:0\nkey %s\ncert %s\n", drainTimeout, key, cert)), cert
}

// startLoadGoing starts gens, pausing between calls, and returns once each
// has made a few, so that every client holds a connection.
func startLoadGoing(t *testing.T, pause time.Duration, gens ...*loadGen) *loadGens {
	t.Helper()
	load := startLoad(t, pause, gens...)
	for _, g := range load.gens {
		waitUntil(t, g.name+" to get going", func() bool { return g.ok.Load()+g.failed.Load() >= 3 })
	}
	return load
}

// keptConn is a client's keep-alive connection, driven by hand so the test
// knows which TCP connection each request goes on.
type keptConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialKept(t *testing.T, network, addr string) *keptConn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keptConn{t: t, c: c, r: bufio.NewReader(c)}
}

// send writes raw request bytes.
func (k *keptConn) send(s string) {
	k.t.Helper()
	k.c.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(k.c, s); err != nil {
		k.t.Fatalf("sending on %s: %v", k.c.LocalAddr(), err)
	}
}

// response reads one response to testdaemon's version handler and returns
// the pid that answered, and whether it said Connection: close.
func (k *keptConn) response() (pid int, closing bool, err error) {
	k.c.SetReadDeadline(time.Now().Add(waitTimeout))
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return 0, false, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, false, err
	}
	_, pid, err = checkVersionResponse(resp.StatusCode, resp.Header, string(body))
	return pid, resp.Close, err
}

const getRequest = "GET / HTTP/1.1\r\nHost: gozd.test\r\n\r\n"

// dialIdle opens n keep-alive connections to addr, each idle once one GET
// is answered on it.
func dialIdle(t *testing.T, addr string, n int) []*keptConn {
	t.Helper()
	conns := make([]*keptConn, n)
	for i := range conns {
		conns[i] = dialKept(t, "tcp", addr)
		conns[i].get()
	}
	return conns
}

// get sends a GET and returns the pid that answered; the response must keep
// the connection open.
func (k *keptConn) get() int {
	k.t.Helper()
	k.send(getRequest)
	pid, closing, err := k.response()
	if err != nil {
		k.t.Fatalf("GET on %s: %v", k.c.LocalAddr(), err)
	}
	if closing {
		k.t.Fatalf("GET on %s answered by pid %d with Connection: close", k.c.LocalAddr(), pid)
	}
	return pid
}

// expectQuickExit fails the test unless old worker pid exited within bound
// of its drain order (what, for the message, says why it should have).
func (d *masterProcess) expectQuickExit(pid int, bound time.Duration, what string) {
	d.t.Helper()
	after := d.oldWorkerExitAfter(pid)
	d.t.Logf("old worker %d (%s) exited %s after its drain order", pid, what, after)
	if after > bound {
		d.t.Errorf("old worker %d (%s) exited %s after its drain order; want within %s, not at drain_timeout", pid, what, after, bound)
	}
}

// oldWorkerExitAfter is how long after its drain order an old worker
// exited, from the master's log.
func (d *masterProcess) oldWorkerExitAfter(pid int) time.Duration {
	d.t.Helper()
	line := d.oldWorkerExit(pid)
	_, after, _ := strings.Cut(line, " after=")
	after, _, _ = strings.Cut(after, " ")
	dur, err := time.ParseDuration(after)
	if err != nil {
		d.t.Fatalf("no duration in %q: %v", line, err)
	}
	return dur
}

// TestHandoffSameConnection: a keep-alive connection opened before a reload
// is answered on the same connection by the new worker afterwards, over tcp
// and over a unix socket, and the old worker exits at once, not at
// drain_timeout.
func TestHandoffSameConnection(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, `
drain_timeout 1m
[web]
mode   http
listen 127.0.0.1:0
[web2]
mode   http
listen %DIR%/web.sock
`)
	old := d.worker()
	conns := []*keptConn{dialKept(t, "tcp", d.addrs["web"]), dialKept(t, "unix", filepath.Join(dir, "web.sock"))}
	for _, k := range conns {
		if pid := k.get(); pid != old {
			t.Fatalf("answered by pid %d before the reload, want the worker %d", pid, old)
		}
	}
	d.reload(buildTestDaemon(t, "v2", ""), true, old)
	d.expectQuickExit(old, 5*time.Second, "its connections idle")
	nw := d.worker()
	for _, k := range conns {
		if pid := k.get(); pid != nw {
			t.Errorf("%s: answered by pid %d after the reload, want the new worker %d", k.c.RemoteAddr().Network(), pid, nw)
		}
	}
}

// TestHandoffManyIdle: with 500 idle keep-alive connections the old worker
// exits within a second of its drain order, both workers log how many
// connections moved, and every connection is answered by the new worker.
func TestHandoffManyIdle(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, webConf)
	old := d.worker()
	conns := dialIdle(t, d.addrs["web"], 500)
	d.proc.signal(syscall.SIGHUP)
	d.expectQuickExit(old, time.Second, fmt.Sprintf("%d idle connections", len(conns)))
	d.waitLog(fmt.Sprintf(`msg="handed connections to the new worker" pid=%d role=worker gen=1 connections=%d `, old, len(conns)), 1)
	nw := d.worker()
	d.waitLog(fmt.Sprintf(`msg="took connections over from the previous worker" pid=%d role=worker gen=2 connections=%d `, nw, len(conns)), 1)
	for i, k := range conns {
		if pid := k.get(); pid != nw {
			t.Fatalf("connection %d: answered by pid %d, want the new worker %d", i, pid, nw)
		}
	}
}

// TestHandoffClosedWhileOldStays: an old worker kept on by a long request
// still lets go of the connections it handed over, so that the new
// worker's close of one reaches its client at once, not when the old
// worker exits.
func TestHandoffClosedWhileOldStays(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), webConf)
	old := d.worker()
	conns := dialIdle(t, d.addrs["web"], 3)
	busy := dialKept(t, "tcp", d.addrs["web"])
	busy.send("GET /sleep?d=50s HTTP/1.1\r\nHost: gozd.test\r\n\r\n")
	d.waitStatus("the long request under way", func(st statusJSON) bool {
		return len(st.Workers) == 1 && len(st.Workers[0].Groups) == 1 && st.Workers[0].Groups[0].Active == 1
	})

	d.reload(buildTestDaemon(t, "v2", ""), true, old)
	var nw int
	d.waitStatus("the idle connections in the new worker", func(st statusJSON) bool {
		for _, w := range st.Workers {
			if w.Pid != old && len(w.Groups) == 1 && w.Groups[0].Idle == len(conns) {
				nw = w.Pid
				return true
			}
		}
		return false
	})
	for i, k := range conns {
		k.send("GET / HTTP/1.1\r\nHost: gozd.test\r\nConnection: close\r\n\r\n")
		pid, closing, err := k.response()
		if err != nil || pid != nw || !closing {
			t.Fatalf("connection %d: answered by pid %d (closing %v, err %v), want the new worker %d closing it", i, pid, closing, err, nw)
		}
		k.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := k.r.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("connection %d, closed by the new worker while the old one serves a long request: read %d bytes, %v; want EOF at once", i, n, err)
		}
	}
	if !processAlive(old) {
		t.Fatalf("old worker %d exited during its long request", old)
	}
	busy.c.Close() // the request's context ends, and the old worker with it
	d.expectQuickExit(old, 15*time.Second, "its long request's client gone")
}

// TestHandoffParkedAcrossReloads: connections taken over wait in the new
// worker, not served until their next request, and count meanwhile as its
// idle connections in -s status; one whose client closes it stops
// counting. A reload before any of them has sent anything hands them on
// again, and the newest worker answers each.
func TestHandoffParkedAcrossReloads(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), webConf)
	first := d.worker()
	const n = 20
	conns := dialIdle(t, d.addrs["web"], n)
	leaving := dialKept(t, "tcp", d.addrs["web"])
	leaving.get()
	idleIn := func(pid int) func(statusJSON) bool {
		return func(st statusJSON) bool {
			want := n
			if leaving != nil {
				want++
			}
			for _, w := range st.Workers {
				if w.Pid == pid {
					return w.Connections == want && len(w.Groups) == 1 && w.Groups[0].Idle == want
				}
			}
			return false
		}
	}

	d.reload(buildTestDaemon(t, "v2", ""), true, first)
	d.expectQuickExit(first, 5*time.Second, "its connections idle")
	second := d.worker()
	d.waitStatus(fmt.Sprintf("%d idle connections in worker %d", n+1, second), idleIn(second))
	leaving.c.Close()
	leaving = nil
	d.waitStatus(fmt.Sprintf("%d idle connections in worker %d once a client left", n, second), idleIn(second))

	d.reload(buildTestDaemon(t, "v3", ""), true, second)
	d.expectQuickExit(second, 5*time.Second, "its connections parked")
	d.waitLog(fmt.Sprintf(`msg="handed connections to the new worker" pid=%d role=worker gen=2 connections=%d `, second, n), 1)
	third := d.worker()
	for i, k := range conns {
		if pid := k.get(); pid != third {
			t.Fatalf("connection %d: answered by pid %d after two reloads, want the newest worker %d", i, pid, third)
		}
	}
}

// TestQuitClosesParked: a graceful stop right after a reload, the
// connections the new worker took over still waiting for their next
// request: there is no worker to hand them to, so they are closed at once,
// as idle ones are, and the daemon exits without waiting for drain_timeout.
func TestQuitClosesParked(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), webConf)
	first := d.worker()
	conns := dialIdle(t, d.addrs["web"], 5)
	d.reload(buildTestDaemon(t, "v2", ""), true, first)
	d.oldWorkerExit(first)
	d.waitLog(fmt.Sprintf(`msg="took connections over from the previous worker" pid=%d role=worker gen=2 connections=%d `, d.worker(), len(conns)), 1)
	start := time.Now()
	d.proc.signal(syscall.SIGQUIT)
	for i, k := range conns {
		k.c.SetReadDeadline(time.Now().Add(waitTimeout))
		if n, err := k.r.ReadByte(); err != io.EOF {
			t.Errorf("connection %d: read %v, %v after the stop; want EOF", i, n, err)
		}
	}
	if code := d.proc.wait(); code != 0 {
		t.Errorf("exit status %d after SIGQUIT, want 0", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("quit took %s with taken-over idle connections open; want them closed at once", took)
	}
}

// TestHandoffHalfReadRequest: a connection whose next request is half read
// when the drain begins is not moved (its bytes are in the old worker's
// buffers): the old worker answers the request, without Connection: close,
// then hands the connection over, and the next request gets the new worker.
// So do a pipelined request read along with a busy one, and a busy one.
func TestHandoffHalfReadRequest(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, webConf)
	old := d.worker()
	half := dialKept(t, "tcp", d.addrs["web"])
	half.get()
	half.send("GET / HTTP/1.1\r\n") // the rest comes after the drain began
	busy := dialKept(t, "tcp", d.addrs["web"])
	busy.send("GET /sleep?d=1s HTTP/1.1\r\nHost: gozd.test\r\n\r\n")
	// The second request of the pair is read with the first, which the
	// old worker is busy with when the drain begins.
	pipelined := dialKept(t, "tcp", d.addrs["web"])
	pipelined.send("GET /sleep?d=1s HTTP/1.1\r\nHost: gozd.test\r\n\r\n" + getRequest)
	time.Sleep(100 * time.Millisecond) // let the slow requests reach their handler

	d.proc.signal(syscall.SIGHUP)
	d.waitLog(fmt.Sprintf(`msg="worker draining" pid=%d role=master worker=%d `, d.pid, old), 1)
	half.send("Host: gozd.test\r\n\r\n")
	for _, k := range []*keptConn{half, busy, pipelined, pipelined} {
		pid, closing, err := k.response()
		if err != nil {
			t.Fatalf("request in the old worker's hands: %v", err)
		}
		if pid != old || closing {
			t.Errorf("request in the old worker's hands: answered by pid %d (close %v), want %d keeping the connection", pid, closing, old)
		}
	}
	d.expectQuickExit(old, 10*time.Second, "soon after its last response")
	nw := d.worker()
	for _, k := range []*keptConn{half, busy, pipelined} {
		if pid := k.get(); pid != nw {
			t.Errorf("after the reload: answered by pid %d, want the new worker %d", pid, nw)
		}
	}
}

// TestHandoffRemovedGroup: the connections of a group the new config drops
// cannot move; they get the drain as before (an in-flight response says
// Connection: close, an idle connection is closed), while the kept group's
// move.
func TestHandoffRemovedGroup(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, `
drain_timeout 1m
[web]
mode   http
listen 127.0.0.1:0
[web2]
mode   http
listen 127.0.0.1:0
`)
	old := d.worker()
	kept := dialKept(t, "tcp", d.addrs["web"])
	kept.get()
	idle := dialKept(t, "tcp", d.addrs["web2"])
	idle.get()
	busy := dialKept(t, "tcp", d.addrs["web2"])
	busy.send("GET /sleep?d=1s HTTP/1.1\r\nHost: gozd.test\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // let the slow request reach its handler

	d.writeConfig(`
drain_timeout 1m
[web]
mode   http
listen 127.0.0.1:0
`)
	d.proc.signal(syscall.SIGHUP)
	pid, closing, err := busy.response()
	if err != nil || pid != old || !closing {
		t.Errorf("in-flight request of the removed group: pid %d, close %v, %v; want pid %d with Connection: close", pid, closing, err, old)
	}
	for _, k := range []*keptConn{idle, busy} {
		k.c.SetReadDeadline(time.Now().Add(waitTimeout))
		if n, err := k.r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("connection of the removed group: read %d bytes, %v; want EOF", n, err)
		}
	}
	d.oldWorkerExit(old)
	if pid := kept.get(); pid != d.worker() {
		t.Errorf("kept group: answered by pid %d, want the new worker %d", pid, d.worker())
	}
}

// TestHandoffHeirDies: the new worker dies while the old one still has a
// request in flight. The old worker notices, answers it with Connection:
// close and closes it, as a drain without handoff would, and exits; the
// master starts another worker, which serves.
func TestHandoffHeirDies(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, webConf)
	old := d.worker()
	busy := dialKept(t, "tcp", d.addrs["web"])
	busy.send("GET /sleep?d=2s HTTP/1.1\r\nHost: gozd.test\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // let the slow request reach its handler
	d.proc.signal(syscall.SIGHUP)
	d.waitLog(fmt.Sprintf(`msg="worker draining" pid=%d role=master worker=%d `, d.pid, old), 1)
	var heir int
	for _, pid := range childPids(d.pid) {
		if pid != old {
			heir = pid
		}
	}
	if heir == 0 {
		t.Fatal("no new worker")
	}
	syscall.Kill(heir, syscall.SIGKILL)
	d.waitLog("worker died; restarting it", 1)

	pid, closing, err := busy.response()
	if err != nil || pid != old || !closing {
		t.Fatalf("in-flight request: pid %d, close %v, %v; want answered by %d with Connection: close", pid, closing, err, old)
	}
	busy.c.SetReadDeadline(time.Now().Add(waitTimeout))
	if n, err := busy.r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("after its response: read %d bytes, %v; want EOF", n, err)
	}
	d.expectQuickExit(old, 10*time.Second, "soon after its last response")
	d.waitLog(`msg="worker ready"`, 3)
	if pid := dialKept(t, "tcp", d.addrs["web"]).get(); pid != d.worker() {
		t.Errorf("after the restart: answered by pid %d, want the worker %d", pid, d.worker())
	}
}

// TestHandoffNginx: nginx keeps its connections to gozd open — FastCGI
// (fastcgi_keep_conn, upstream keepalive) or HTTP (proxy_pass, upstream
// keepalive) — over a link of 15 ms each way, where a connection closed
// while idle is crossed on the wire by nginx's next request, which nginx
// does not retry for a POST. Across five reloads under POST load no
// response is a 502 or 504; and a reload while nginx holds its kept
// connections idle lets the old worker exit at once instead of holding it
// until drain_timeout.
func TestHandoffNginx(t *testing.T) {
	for _, tc := range []struct {
		name, group    string
		proxyHTTP      bool
		network, where string
	}{
		{"fastcgi_keep_conn", "[fcgi]\nmode fcgi\nlisten %DIR%/f.sock\nchmod 0666\n", false, "unix", "f.sock"},
		{"proxy_pass keepalive", "[web]\nmode http\nlisten 127.0.0.1:0\n", true, "tcp", "web"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := exampleDir(t) // nginx's workers run as another user
			d := startMaster(t, dir, "drain_timeout 20s\n"+tc.group)
			addr := d.addrs[tc.where]
			if tc.network == "unix" {
				addr = filepath.Join(dir, tc.where)
			}
			proxy := startLatencyProxy(t, tc.network, addr, 15*time.Millisecond)
			n := exStartNginxAt(t, dir, proxy.Addr(), true, tc.proxyHTTP)
			var gens []*loadGen
			for i := range 4 {
				c := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
				t.Cleanup(c.CloseIdleConnections)
				gens = append(gens, &loadGen{name: fmt.Sprintf("POST via nginx %d", i), do: func(int) (string, error) {
					v, _, err := httpPostVersion(c, n.url)
					return v, err
				}})
			}
			load := startLoadGoing(t, 40*time.Millisecond, gens...)
			d.reloadTimes(5, 200*time.Millisecond)
			load.check(t)

			// nginx's kept connections are idle now.
			old := d.worker()
			d.reloadTimes(1, 0)
			d.expectQuickExit(old, 5*time.Second, "nginx's kept connections idle")
			nw := d.worker()
			for range 8 {
				_, pid, err := httpPostVersion(n.client, n.url)
				if err != nil || pid != nw {
					t.Fatalf("POST via nginx after the reload: pid %d, %v; want answered by %d", pid, err, nw)
				}
			}
		})
	}
}

// TestDrainingTellsHandlers: a streaming response and a hijacked connection
// learn from gozd.Draining that their worker drains, say goodbye and end,
// and the old worker exits at once instead of at drain_timeout.
func TestDrainingTellsHandlers(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, webConf)
	old := d.worker()
	hello := fmt.Sprintf("v1 %d\n", old)
	var bodies []*bufio.Reader
	for _, path := range []string{"/stream", "/hijack"} {
		k := dialKept(t, "tcp", d.addrs["web"])
		k.send("GET " + path + " HTTP/1.1\r\nHost: gozd.test\r\n\r\n")
		k.c.SetReadDeadline(time.Now().Add(waitTimeout))
		resp, err := http.ReadResponse(k.r, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		body := bufio.NewReader(resp.Body)
		if line, err := body.ReadString('\n'); line != hello {
			t.Fatalf("GET %s: first line %q, %v; want %q", path, line, err, hello)
		}
		bodies = append(bodies, body)
	}
	d.reload(buildTestDaemon(t, "v1", ""), true, old)
	for i, body := range bodies {
		rest, err := io.ReadAll(body)
		if string(rest) != "bye\n" || err != nil {
			t.Errorf("response %d after the drain began: %q, %v; want %q, then its end", i, rest, err, "bye\n")
		}
	}
	d.expectQuickExit(old, 10*time.Second, "its handlers told")
}

// postProto POSTs to url and checks the answer and its protocol version.
func postProto(c *http.Client, url string, major int) (string, error) {
	resp, err := c.Post(url, "text/plain", strings.NewReader("hello"))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("POST %s: reading the body: %w", url, err)
	}
	if resp.ProtoMajor != major {
		return "", fmt.Errorf("POST %s: answered over %s, want HTTP/%d", url, resp.Proto, major)
	}
	v, _, err := checkVersionResponse(resp.StatusCode, resp.Header, string(body))
	return v, err
}

// TestHandoffTLS: TLS connections cannot move, so the drain tells them:
// keep-alive POSTs over HTTP/1.1 and over HTTP/2, through a link of 15 ms
// each way, do not fail across five reloads.
func TestHandoffTLS(t *testing.T) {
	d, cert := startHTTPSMaster(t, "5s")
	d.worker()
	proxy := startLatencyProxy(t, "tcp", d.addrs["web"], 15*time.Millisecond)
	url := "https://" + proxy.Addr() + "/"
	var gens []*loadGen
	for i := range 8 {
		tr := &http.Transport{TLSClientConfig: exTrustingTLS(t, cert), MaxIdleConnsPerHost: 1}
		major := 1
		if i%2 == 0 {
			tr.ForceAttemptHTTP2 = true
			major = 2
		} else {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
		}
		c := &http.Client{Timeout: waitTimeout, Transport: tr}
		t.Cleanup(c.CloseIdleConnections)
		gens = append(gens, &loadGen{name: fmt.Sprintf("POST HTTP/%d %d", major, i), do: func(int) (string, error) {
			return postProto(c, url, major)
		}})
	}
	load := startLoadGoing(t, 40*time.Millisecond, gens...)
	d.reloadTimes(5, 300*time.Millisecond)
	load.check(t)
}

// TestDrainTLSIdle: at the drain, an idle HTTP/1.1 connection over TLS is
// not closed (its next request is answered, with Connection: close), and
// an HTTP/2 connection gets GOAWAY before it closes.
func TestDrainTLSIdle(t *testing.T) {
	d, cert := startHTTPSMaster(t, "1m")
	old := d.worker()
	dialTLS := func(proto string) *tls.Conn {
		conf := exTrustingTLS(t, cert)
		conf.NextProtos = []string{proto}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", d.addrs["web"], conf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	h1c := dialTLS("http/1.1")
	h1 := &keptConn{t: t, c: h1c, r: bufio.NewReader(h1c)}
	if pid := h1.get(); pid != old {
		t.Fatalf("answered by %d, want the worker %d", pid, old)
	}

	// A bare HTTP/2 client: preface and SETTINGS, then it notes the type
	// of every frame the server sends until the connection ends.
	h2 := dialTLS("h2")
	if _, err := io.WriteString(h2, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); err != nil {
		t.Fatal(err)
	}
	frames := make(chan byte, 100)
	go func() {
		defer close(frames)
		h2.SetReadDeadline(time.Now().Add(waitTimeout))
		var hdr [9]byte
		for {
			if _, err := io.ReadFull(h2, hdr[:]); err != nil {
				return
			}
			if _, err := io.CopyN(io.Discard, h2, int64(hdr[0])<<16|int64(hdr[1])<<8|int64(hdr[2])); err != nil {
				return
			}
			if hdr[3] == 0x4 && hdr[4]&0x1 == 0 { // SETTINGS: acknowledge
				h2.Write([]byte{0, 0, 0, 0x4, 0x1, 0, 0, 0, 0})
			}
			frames <- hdr[3]
		}
	}()
	if typ := <-frames; typ != 0x4 {
		t.Fatalf("HTTP/2: first frame of type %d, want SETTINGS", typ)
	}

	d.proc.signal(syscall.SIGHUP)
	d.waitLog(fmt.Sprintf(`msg="worker draining" pid=%d role=master worker=%d `, d.pid, old), 1)
	sawGoAway := false
	for typ := range frames {
		if typ == 0x7 {
			sawGoAway = true
		}
	}
	if !sawGoAway {
		t.Error("HTTP/2 connection closed without GOAWAY")
	}

	time.Sleep(200 * time.Millisecond) // longer than any linger of an idle connection
	h1.send(getRequest)
	pid, closing, err := h1.response()
	if err != nil || pid != old || !closing {
		t.Errorf("idle HTTP/1.1 over TLS after the drain began: pid %d, close %v, %v; want answered by %d with Connection: close", pid, closing, err, old)
	}
	d.expectQuickExit(old, 10*time.Second, "soon after its last connection closed")
}

// TestHandoffTCPSession: a tcp session whose handler hands it over with
// Conn.Handoff keeps answering on the same connection across three
// reloads, each time from the new worker, with the count it carries in its
// state never reset — also for a line that was half sent at the drain.
func TestHandoffTCPSession(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, `
drain_timeout 1m
[session]
mode   tcp
listen 127.0.0.1:0
`)
	k := dialKept(t, "tcp", d.addrs["session"])
	count := 0
	ping := func(want int) {
		t.Helper()
		k.send("ping\n")
		k.c.SetReadDeadline(time.Now().Add(waitTimeout))
		line, err := k.r.ReadString('\n')
		if err != nil {
			t.Fatalf("session: %v", err)
		}
		count++
		if line != fmt.Sprintf("%d %d\n", count, want) {
			t.Fatalf("session answered %q, want %q", line, fmt.Sprintf("%d %d\n", count, want))
		}
	}
	old := d.worker()
	ping(old)
	ping(old)
	for i := range 3 {
		if i == 2 {
			k.send("pi") // the rest of the line comes after the handoff
		}
		d.reload(buildTestDaemon(t, "v1", ""), true, old)
		d.expectQuickExit(old, 5*time.Second, "its session handed over")
		old = d.worker()
		if i == 2 {
			k.send("ng\n")
			k.c.SetReadDeadline(time.Now().Add(waitTimeout))
			line, _ := k.r.ReadString('\n')
			count++
			if line != fmt.Sprintf("%d %d\n", count, old) {
				t.Fatalf("line split across the handoff: answered %q, want %q", line, fmt.Sprintf("%d %d\n", count, old))
			}
		}
		ping(old)
	}
}

// TestHandoffChainedReloads: a reload while the previous one still drains.
// The first worker's busy connection moves when its response is done, to
// its heir, which drains by then too and passes the connection on to the
// newest worker.
func TestHandoffChainedReloads(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, webConf)
	first := d.worker()
	busy := dialKept(t, "tcp", d.addrs["web"])
	busy.send("GET /sleep?d=2s HTTP/1.1\r\nHost: gozd.test\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // let the slow request reach its handler
	d.reloadTimes(2, 0)
	pid, closing, err := busy.response()
	if err != nil || pid != first || closing {
		t.Fatalf("slow request: pid %d, close %v, %v; want answered by %d keeping the connection", pid, closing, err, first)
	}
	d.oldWorkerExit(first)
	last := d.worker()
	if pid := busy.get(); pid != last {
		t.Errorf("after two reloads: answered by pid %d, want the newest worker %d", pid, last)
	}
}

// TestQuitClosesIdleTLS: a graceful stop has no new worker to compare with:
// idle HTTP/1.1 connections over TLS are closed at once, and the daemon
// does not wait for them until drain_timeout.
func TestQuitClosesIdleTLS(t *testing.T) {
	d, cert := startHTTPSMaster(t, "1m")
	conf := exTrustingTLS(t, cert)
	conf.NextProtos = []string{"http/1.1"}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", d.addrs["web"], conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	k := &keptConn{t: t, c: c, r: bufio.NewReader(c)}
	k.get()
	start := time.Now()
	d.proc.signal(syscall.SIGQUIT)
	if code := d.proc.wait(); code != 0 {
		t.Errorf("exit status %d after SIGQUIT, want 0", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("quit took %s with an idle TLS connection open; want it closed at once", took)
	}
}

// TestHandoffIdleTimeoutAfresh: a connection taken over waits for its next
// request as long as an idle one would (IdleTimeout), not the shorter
// ReadHeaderTimeout net/http gives a connection it has just accepted.
func TestHandoffIdleTimeoutAfresh(t *testing.T) {
	t.Parallel()
	d := startMaster(t, newDaemonDir(t), webConf)
	old := d.worker()
	k := dialKept(t, "tcp", d.addrs["web"])
	k.get()
	d.reload(buildTestDaemon(t, "v1", ""), true, old)
	d.oldWorkerExit(old)
	time.Sleep(gozd.DefaultReadHeaderTimeout + time.Second)
	if pid := k.get(); pid != d.worker() {
		t.Errorf("after %s idle: answered by pid %d, want the new worker %d", gozd.DefaultReadHeaderTimeout+time.Second, pid, d.worker())
	}
}

// addrsOn sends a GET on k and returns the pid that answered and the
// addresses its handler saw.
func (k *keptConn) addrsOn() (pid int, remote, local string) {
	k.t.Helper()
	k.send(getRequest)
	k.c.SetReadDeadline(time.Now().Add(waitTimeout))
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		k.t.Fatalf("GET on %s: %v", k.c.LocalAddr(), err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	pid, _ = strconv.Atoi(resp.Header.Get("X-Pid"))
	return pid, resp.Header.Get("X-Remote-Addr"), resp.Header.Get("X-Local-Addr")
}

// TestHandoffTakeoverSystemCalls: the new worker takes a connection over
// with what came with it (the descriptor, its addresses), without asking
// the kernel for the socket's type and addresses or setting its options
// again, which cost most of a reload with thousands of idle connections;
// the handlers still see the connection's own addresses. strace, attached
// to the master, follows the new worker it starts.
func TestHandoffTakeoverSystemCalls(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("no strace")
	}
	dir := newDaemonDir(t)
	d := startMaster(t, dir, `
drain_timeout 1m
[web]
mode   http
listen 127.0.0.1:0
[web2]
mode   http
listen %DIR%/web.sock
`)
	old := d.worker()
	const n = 100
	var conns []*keptConn
	for i := range n {
		conns = append(conns, dialKept(t, "tcp", d.addrs["web"]))
		if i%10 == 0 {
			conns = append(conns, dialKept(t, "unix", filepath.Join(dir, "web.sock")))
		}
	}
	type seen struct{ remote, local string }
	before := make([]seen, len(conns))
	for i, k := range conns {
		pid, remote, local := k.addrsOn()
		if pid != old {
			t.Fatalf("answered by pid %d before the reload, want %d", pid, old)
		}
		before[i] = seen{remote, local}
	}
	if before[0].remote != conns[0].c.LocalAddr().String() || before[0].local != d.addrs["web"] {
		t.Fatalf("handler saw %s → %s, want %s → %s", before[0].remote, before[0].local, conns[0].c.LocalAddr(), d.addrs["web"])
	}

	out := filepath.Join(dir, "strace")
	st := startProcess(t, strace, "-f", "-o", out, "-e", "trace=getsockname,getpeername,getsockopt,setsockopt", "-p", strconv.Itoa(d.pid))
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(st.out.String(), "attached") {
		select {
		case <-st.done:
			t.Skipf("strace cannot attach here: %s", st.out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("strace did not attach within %s: %s", waitTimeout, st.out.String())
		}
	}
	d.reload(buildTestDaemon(t, "v2", ""), true, old)
	d.oldWorkerExit(old)
	nw := d.worker()
	for i, k := range conns {
		pid, remote, local := k.addrsOn()
		if pid != nw {
			t.Fatalf("connection %d: answered by pid %d after the reload, want the new worker %d", i, pid, nw)
		}
		if (seen{remote, local}) != before[i] {
			t.Errorf("connection %d: the new worker's handler saw %s → %s, the old one's %s → %s", i, remote, local, before[i].remote, before[i].local)
		}
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", nw))
	if err != nil {
		t.Fatal(err)
	}
	st.signal(syscall.SIGINT) // strace detaches
	st.wait()

	trace, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ofNew := map[string]bool{}
	for _, task := range tasks {
		ofNew[task.Name()] = true
	}
	calls := 0
	for line := range strings.Lines(string(trace)) {
		tid, call, _ := strings.Cut(line, " ")
		if ofNew[tid] && !strings.HasPrefix(strings.TrimSpace(call), "---") && !strings.HasPrefix(strings.TrimSpace(call), "+++") {
			calls++
		}
	}
	t.Logf("the new worker made %d getsockname, getpeername, getsockopt and setsockopt calls taking %d connections over", calls, len(conns))
	if calls >= len(conns) {
		t.Errorf("the new worker made %d getsockname, getpeername, getsockopt and setsockopt calls taking %d connections over; want fewer than one a connection", calls, len(conns))
	}
}

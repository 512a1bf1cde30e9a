package gozd_test

// Reloads that no client can notice, over a link with latency: keep-alive
// connections move to the new worker instead of being closed under a
// request already on the wire.

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

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
	resp, err := c.Post(url, "text/plain", strings.NewReader("hello"))
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, fmt.Errorf("POST %s: reading the body: %w", url, err)
	}
	return checkVersionResponse(resp.StatusCode, resp.Header, string(body))
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
func TestHandoffKeepAlivePOSTOverLatency(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, `
drain_timeout 10s
[web]
mode   http
listen 127.0.0.1:0
`)
	d.worker()
	proxy := startLatencyProxy(t, "tcp", d.addrs["web"], 15*time.Millisecond)
	load := startLoad(t, 40*time.Millisecond, postGens(t, 16, "http://"+proxy.Addr()+"/")...)
	// Every client has a connection open before the first reload.
	for _, g := range load.gens {
		waitUntil(t, g.name+" to get going", func() bool { return g.ok.Load()+g.failed.Load() >= 3 })
	}
	d.reloadTimes(10, 300*time.Millisecond)
	load.check(t)
}

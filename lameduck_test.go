package gozd_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// freshGet GETs url on a new connection and returns the status and body.
func freshGet(url string) (int, string, error) {
	c := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestLameDuckKubelet plays the kubelet stopping a pod: SIGTERM to the
// master (PID 1), while kube-proxy and the ingress still send new
// connections for a while. The health endpoint fails at once and systemd
// (or whoever listens) hears STOPPING=1; new connections are still accepted
// and answered 200 for shutdown_delay; then the drain lets a request under
// way finish, and the master exits 0.
func TestLameDuckKubelet(t *testing.T) {
	const delay = 3 * time.Second
	dir := newDaemonDir(t)
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: dir + "/notify.sock", Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	t.Setenv("NOTIFY_SOCKET", dir+"/notify.sock")
	d := startMaster(t, dir, fmt.Sprintf(`
shutdown_delay %s
drain_timeout  1m
[web]
mode   http
listen 127.0.0.1:0
health /healthz
`, delay))
	base := "http://" + d.addrs["web"]
	nextNotify := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		notify.SetReadDeadline(time.Now().Add(waitTimeout))
		n, err := notify.Read(buf)
		if err != nil {
			t.Fatalf("notify socket: %v", err)
		}
		return string(buf[:n])
	}
	if msg := nextNotify(); msg != "READY=1" {
		t.Fatalf("notify %q, want READY=1", msg)
	}
	if code, body, err := freshGet(base + "/healthz"); err != nil || code != 200 || body != "ok\n" {
		t.Fatalf("health while serving: %d %q %v", code, body, err)
	}

	sent := time.Now()
	d.proc.signal(syscall.SIGTERM)
	if msg := nextNotify(); msg != "STOPPING=1" {
		t.Errorf("notify %q after SIGTERM, want STOPPING=1", msg)
	}
	var failedAfter time.Duration
	waitUntil(t, "health to answer 503", func() bool {
		code, body, err := freshGet(base + "/healthz")
		if err != nil {
			t.Fatalf("health in the lame duck: %v", err)
		}
		failedAfter = time.Since(sent)
		return code == http.StatusServiceUnavailable && body == "shutting down\n"
	})
	t.Logf("health answered 503 %s after SIGTERM", failedAfter.Round(time.Millisecond))
	if failedAfter >= delay {
		// Only a machine too loaded to tell anything would take this
		// long; the lame duck is then over and nothing below holds.
		t.Skipf("health failed only %s after SIGTERM, past shutdown_delay %s", failedAfter, delay)
	}

	// New connections, as from a load balancer that has not noticed yet,
	// are served until well inside shutdown_delay.
	served := 0
	for time.Since(sent) < delay/2 {
		code, body, err := freshGet(base + "/")
		if err != nil || code != 200 || !strings.HasPrefix(body, "v1 ") {
			t.Fatalf("new connection %s into the lame duck: %d %q %v", time.Since(sent), code, body, err)
		}
		if code, _, err := freshGet(base + "/healthz"); err != nil || code != http.StatusServiceUnavailable {
			t.Fatalf("health went back to %d (%v) in the lame duck", code, err)
		}
		served++
	}
	// A request that begins in the lame duck and ends in the drain.
	var wg sync.WaitGroup
	var slowCode int
	var slowErr error
	wg.Go(func() { slowCode, _, slowErr = freshGet(base + "/sleep?d=" + delay.String()) })
	if code := d.proc.wait(); code != 0 {
		t.Errorf("master exit status %d, want 0", code)
	}
	wg.Wait()
	if slowErr != nil || slowCode != 200 {
		t.Errorf("request under way at the drain: %d %v", slowCode, slowErr)
	}
	if took := time.Since(sent); took < delay {
		t.Errorf("master exited %s after SIGTERM, before shutdown_delay %s", took, delay)
	}
	t.Logf("%d requests on new connections served in the lame duck", served)
	out := d.proc.out.String()
	lame, shut := strings.Index(out, `msg="lame duck: health checks fail`), strings.Index(out, `msg="shutting down"`)
	if lame < 0 || shut < lame {
		t.Errorf("want the lame duck, then the drain, in the log:\n%s", out)
	}
	if _, err := net.DialTimeout("tcp", d.addrs["web"], time.Second); err == nil {
		t.Errorf("%s still accepts after the master exited", d.addrs["web"])
	}
}

// TestLameDuckStopSkips: -s stop in the lame duck stops at once, however
// long shutdown_delay is; a reload there is refused.
func TestLameDuckStopSkips(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
shutdown_delay 10m
[web]
mode   http
listen 127.0.0.1:0
health /healthz
`)
	base := "http://" + d.addrs["web"]
	w := d.worker()
	d.proc.signal(syscall.SIGTERM)
	waitUntil(t, "health to answer 503", func() bool {
		code, _, err := freshGet(base + "/healthz")
		return err == nil && code == http.StatusServiceUnavailable
	})
	st := d.status()
	if !st.Running || st.Worker != w {
		t.Errorf("-s status in the lame duck: %+v", st)
	}
	if out, _ := d.control("status"); !strings.Contains(out, "lame duck") {
		t.Errorf("-s status in the lame duck does not say so:\n%s", out)
	}
	// -s reload is told at once, rather than waiting for a reload that
	// will not come.
	if out, code := d.control("reload"); code == 0 || !strings.Contains(out, "shutting down: not reloaded") {
		t.Errorf("-s reload in the lame duck: exit %d: %s", code, out)
	}
	if code, body, err := freshGet(base + "/"); err != nil || code != 200 || !strings.HasPrefix(body, fmt.Sprintf("v1 %d", w)) {
		t.Errorf("GET / in the lame duck after a HUP: %d %q %v", code, body, err)
	}
	if out, code := d.control("stop"); code != 0 {
		t.Fatalf("-s stop: exit %d: %s", code, out)
	}
	if code := d.proc.wait(); code != 0 {
		t.Errorf("exit status %d after -s stop, want 0", code)
	}
	if n := d.logCount(`msg="worker started"`); n != 1 {
		t.Errorf("%d workers started; a HUP in the lame duck must start none", n)
	}
}

// TestHealthReloadNoFlap: health checks on new and on kept connections
// answer 200 throughout reloads: the new worker is healthy once ready, and
// the old one, draining for a reload and not a shutdown, stays healthy on
// the connections it still has.
func TestHealthReloadNoFlap(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
[web]
mode   http
listen 127.0.0.1:0
health /healthz
`)
	url := "http://" + d.addrs["web"] + "/healthz"
	kept := &http.Client{Timeout: waitTimeout}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	checks := 0
	for _, get := range []func() (int, error){
		func() (int, error) { code, _, err := freshGet(url); return code, err },
		func() (int, error) {
			resp, err := kept.Get(url)
			if err != nil {
				return 0, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		},
	} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, err := get()
				mu.Lock()
				checks++
				if err != nil || code != 200 {
					bad = append(bad, fmt.Sprintf("%d %v", code, err))
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		})
	}
	w := d.worker()
	for _, v := range []string{"v2", "v3"} {
		w = d.reload(buildTestDaemon(t, v, ""), false, w)
		waitUntil(t, "the old worker gone", func() bool { return len(childPids(d.pid)) == 1 })
	}
	close(stop)
	wg.Wait()
	if len(bad) > 0 || checks == 0 {
		t.Errorf("%d of %d health checks failed across reloads: %q", len(bad), checks, bad)
	}
}

// TestLameDuckWholeGroup: systemd's stop signals every process of the
// service at once (KillMode=control-group). A worker that gets the signal
// itself keeps serving through shutdown_delay too, instead of draining
// while its master still holds the listeners open.
func TestLameDuckWholeGroup(t *testing.T) {
	const delay = 3 * time.Second
	d := startMaster(t, newDaemonDir(t), fmt.Sprintf(`
shutdown_delay %s
[web]
mode   http
listen 127.0.0.1:0
health /healthz
`, delay))
	base := "http://" + d.addrs["web"]
	w := d.worker()
	sent := time.Now()
	syscall.Kill(w, syscall.SIGQUIT)
	d.proc.signal(syscall.SIGQUIT)
	waitUntil(t, "health to answer 503", func() bool {
		code, _, err := freshGet(base + "/healthz")
		return err == nil && code == http.StatusServiceUnavailable
	})
	if time.Since(sent) >= delay/2 {
		t.Skipf("health failed only %s after the signal; too slow a machine to tell", time.Since(sent))
	}
	for time.Since(sent) < delay/2 {
		code, body, err := freshGet(base + "/")
		if err != nil || code != 200 || !strings.HasPrefix(body, fmt.Sprintf("v1 %d", w)) {
			t.Fatalf("new connection %s into the lame duck: %d %q %v", time.Since(sent), code, body, err)
		}
	}
	if code := d.proc.wait(); code != 0 {
		t.Errorf("master exit status %d, want 0", code)
	}
	if n := d.logCount(`msg="worker died`); n != 0 {
		t.Errorf("the worker was taken for dead:\n%s", d.proc.out.String())
	}
}

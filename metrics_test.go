package gozd_test

import (
	"bufio"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// scrape GETs the metrics page and returns each sample's value by its name
// with labels, as written.
func scrape(t *testing.T, url string) (map[string]float64, string) {
	t.Helper()
	code, body, err := freshGet(url)
	if err != nil || code != 200 {
		t.Fatalf("GET %s: %d %v", url, code, err)
	}
	samples := make(map[string]float64)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	return samples, body
}

// TestMetrics: the metrics path serves the Prometheus text format with
// gozd's metrics and the serving worker's Go runtime metrics; the master's
// counters survive reloads and restarts.
func TestMetrics(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
drain_timeout 10s
[web]
mode    http
listen  127.0.0.1:0
health  /healthz
metrics /metrics
[echo]
mode   tcp
listen 127.0.0.1:0
`)
	url := "http://" + d.addrs["web"] + "/metrics"
	m, body := scrape(t, url)
	for _, want := range []string{
		"# TYPE gozd_reloads_total counter",
		"# TYPE gozd_reload_duration_seconds histogram",
		"# TYPE go_goroutines gauge",
		`gozd_workers{state="serving"} 1`,
		"gozd_worker_generation 1",
		"process_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if m[`gozd_reloads_total{result="ok"}`] != 0 || m["gozd_worker_restarts_total"] != 0 {
		t.Errorf("fresh daemon: %v", m)
	}
	for range 5 {
		if code, _, err := freshGet("http://" + d.addrs["web"] + "/"); err != nil || code != 200 {
			t.Fatalf("GET /: %d %v", code, err)
		}
	}
	old := d.worker()
	nw := d.reload(buildTestDaemon(t, "v2", ""), false, old)
	installBinary(t, buildTestDaemon(t, "v3", "crash"), d.bin)
	if out, code := d.control("reload"); code == 0 {
		t.Fatalf("reload into a crashing build: %s", out)
	}
	syscall.Kill(nw, syscall.SIGKILL) // with the crashing build on disk: restarts fail...
	installBinary(t, buildTestDaemon(t, "v2", ""), d.bin)
	// ...until the good one is back.
	var last map[string]float64
	waitUntil(t, "the metrics of two reloads and a restart", func() bool {
		code, _, err := freshGet("http://" + d.addrs["web"] + "/healthz")
		if err != nil || code != 200 {
			return false // restarting
		}
		last, body = scrape(t, url)
		return last[`gozd_reloads_total{result="ok"}`] == 1 && last[`gozd_reloads_total{result="failed"}`] == 1 &&
			last["gozd_worker_restarts_total"] >= 1 && last[`gozd_accepted_connections_total{group="web"}`] >= 6+1 &&
			last["gozd_drain_duration_seconds_count"] == 1 && last["gozd_reload_duration_seconds_count"] == 1
	})
	for name, want := range map[string]float64{
		`gozd_workers{state="serving"}`:                   1,
		`gozd_workers{state="draining"}`:                  0,
		`gozd_connections{group="echo",state="active"}`:   0,
		`gozd_handed_over_connections_total{group="web"}`: 0,
	} {
		if got, ok := last[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if g := last["gozd_worker_generation"]; g < 4 {
		t.Errorf("gozd_worker_generation %v after a reload, a failed one and a restart, want at least 4", g)
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}

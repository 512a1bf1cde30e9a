package main

// Reloads as a client across a real network sees them: keep-alive POSTs
// through a proxy that delays each direction, where a server's FIN can
// cross the client's next request.

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gozd/gozd/internal/latencyproxy"
)

// The latency run's shape, as in the issue that measured it.
const (
	latencyOneWay  = 15 * time.Millisecond // 30 ms round trip
	latencyClients = 32
	latencyPause   = 40 * time.Millisecond // between a client's requests
	latencySpacing = 300 * time.Millisecond
)

// latencyRun is one server's keep-alive POST load through the proxy.
type latencyRun struct {
	label    string // "gozd", "gozd, no reloads", "tableflip"
	reloads  int
	dur      time.Duration
	ok, fail int64
	errs     []string // "N × message", most frequent first
}

// runLatency loads the named server through the proxy for dur, or, with
// reloads > 0, across that many reloads (dur is then what they took).
func runLatency(env *runEnv, name, label string, reloads int, dur time.Duration) (*latencyRun, error) {
	s, err := env.start(name, versions[0])
	if err != nil {
		return nil, err
	}
	defer s.stop()
	proxy, err := latencyproxy.Start("tcp", s.httpAddr, latencyOneWay)
	if err != nil {
		return nil, err
	}
	defer proxy.Close()

	url := "http://" + proxy.Addr() + "/"
	var ok, fail atomic.Int64
	var mu sync.Mutex
	errs := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range latencyClients {
		c := &http.Client{Timeout: opTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
		wg.Go(func() {
			defer c.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := post(c, url); err != nil {
					fail.Add(1)
					msg := addrPattern.ReplaceAllString(err.Error(), "ADDR")
					mu.Lock()
					errs[msg]++
					mu.Unlock()
				} else {
					ok.Add(1)
				}
				time.Sleep(latencyPause)
			}
		})
	}
	start := time.Now()
	time.Sleep(500 * time.Millisecond) // every client has a connection open
	for i := 1; i <= reloads; i++ {
		if err := install(env.bins[name][versions[i%2]], s.bin); err != nil {
			return nil, err
		}
		old := s.serving
		from := s.log.mark()
		if err := s.signalReload(); err != nil {
			return nil, err
		}
		if _, err := s.reloaded(from, 10*time.Second); err != nil {
			return nil, fmt.Errorf("%s reload %d: %w\n%s", name, i, err, s.log.tail(20))
		}
		if err := s.waitGone(old, 15*time.Second); err != nil {
			return nil, err
		}
		time.Sleep(latencySpacing)
	}
	if reloads == 0 {
		time.Sleep(dur - time.Since(start))
	} else {
		time.Sleep(500 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	r := &latencyRun{label: label, reloads: reloads, dur: time.Since(start), ok: ok.Load(), fail: fail.Load()}
	for msg, n := range errs {
		r.errs = append(r.errs, fmt.Sprintf("%d × %s", n, msg))
	}
	sort.Slice(r.errs, func(i, j int) bool { return r.errs[i] > r.errs[j] })
	logf("  %s: %d reloads in %v, %d POSTs, %d failed", label, reloads, r.dur.Round(time.Millisecond), r.ok+r.fail, r.fail)
	for _, e := range r.errs {
		logf("    %s", e)
	}
	return r, nil
}

// post sends one POST with a small body, which Go's client does not retry
// when the reused connection it went out on turns out closed.
func post(c *http.Client, url string) error {
	return checkHello(c.Post(url, "text/plain", strings.NewReader("hello")))
}

// runLatencyAll runs gozd across reloads, gozd without (as long), and
// tableflip across reloads.
func runLatencyAll(env *runEnv) ([]*latencyRun, error) {
	n := env.s.latencyReloads
	g, err := runLatency(env, "gozd", "gozd", n, 0)
	if err != nil {
		return nil, err
	}
	still, err := runLatency(env, "gozd", "gozd, no reloads", 0, g.dur)
	if err != nil {
		return nil, err
	}
	tf, err := runLatency(env, "tableflip", "tableflip", n, 0)
	if err != nil {
		return nil, err
	}
	return []*latencyRun{g, still, tf}, nil
}

func (r *report) latencyTable(p func(string, ...any)) {
	if len(r.latency) == 0 {
		return
	}
	p("## Keep-alive POST across a %v link, under reloads", 2*latencyOneWay)
	p("")
	p("%d clients with Go's `net/http` client, each on its own keep-alive connection, POST a small body and pause %v, through [a proxy](internal/latencyproxy) that delays each direction by %v (FIN and RST too): a connection the server closes while idle is crossed on the wire by the client's next request, which Go's client does not retry for a POST. Reloads %v apart, each once the old process has exited.", latencyClients, latencyPause, latencyOneWay, latencySpacing)
	p("")
	p("| server | reloads | POSTs | failed | errors |")
	p("|---|---:|---:|---:|---|")
	for _, l := range r.latency {
		errs := "—"
		if len(l.errs) > 0 {
			errs = strings.Join(l.errs[:min(3, len(l.errs))], "; ")
		}
		p("| %s | %d | %d | %d | %s |", l.label, l.reloads, l.ok+l.fail, l.fail, errs)
	}
	p("")
}

// latencyTargets adds the latency run's row to the targets table and
// returns its gap.
func (r *report) latencyTargets(p func(string, ...any), yes func(bool) string) []string {
	var gaps []string
	var with, without *latencyRun
	for _, l := range r.latency {
		switch l.label {
		case "gozd":
			with = l
		case "gozd, no reloads":
			without = l
		}
	}
	if with != nil && without != nil {
		ok := with.fail == without.fail && with.fail == 0
		p("| gozd: keep-alive POST across a %v link, failures with %d reloads = without (0) | %d / %d | %s |", 2*latencyOneWay, with.reloads, with.fail, without.fail, yes(ok))
		if !ok {
			gaps = append(gaps, fmt.Sprintf("Across the %v link gozd failed %d POSTs with reloads and %d without; see the errors listed above.", 2*latencyOneWay, with.fail, without.fail))
		}
	}
	return gaps
}

package gozd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Metrics: the master owns the counters, so that they survive reloads and
// worker restarts; a worker whose group has a metrics path asks the master
// for them at each scrape and adds its own Go runtime and process metrics.
//
// The exposition format is VictoriaMetrics/metrics': it writes the
// Prometheus text format with TYPE lines and real histograms (le buckets),
// and brings two tiny modules along, where prometheus/client_golang would
// bring protobuf, prometheus/common, procfs and more into every gozd
// program's go.mod.
const (
	msgScrape  = "scrape"  // worker → master: the metrics, please
	msgMetrics = "metrics" // master → worker: metrics "TEXT" (a JSON string)

	scrapeTimeout = 2 * time.Second
)

// masterMetrics are the master's metrics. The Set is safe for concurrent
// use: the loop updates it, readControl goroutines render it.
type masterMetrics struct {
	set                           *metrics.Set
	reloadsOK, reloadsFailed      *metrics.Counter
	restarts                      *metrics.Counter
	reloadDuration, drainDuration *metrics.PrometheusHistogram
	generation, serving, draining *metrics.Gauge
	acceptedGone, handedOverGone  map[string]uint64 // by group: of workers that exited
	groups                        map[string]bool   // every group ever served
	reloadAsked                   time.Time         // the first HUP of the reload under way
}

func newMasterMetrics() *masterMetrics {
	metrics.ExposeMetadata(true)
	s := metrics.NewSet()
	return &masterMetrics{
		set:            s,
		reloadsOK:      s.NewCounter(`gozd_reloads_total{result="ok"}`),
		reloadsFailed:  s.NewCounter(`gozd_reloads_total{result="failed"}`),
		restarts:       s.NewCounter(`gozd_worker_restarts_total`),
		reloadDuration: s.NewPrometheusHistogram(`gozd_reload_duration_seconds`),
		drainDuration:  s.NewPrometheusHistogram(`gozd_drain_duration_seconds`),
		generation:     s.NewGauge(`gozd_worker_generation`, nil),
		serving:        s.NewGauge(`gozd_workers{state="serving"}`, nil),
		draining:       s.NewGauge(`gozd_workers{state="draining"}`, nil),
		acceptedGone:   make(map[string]uint64),
		handedOverGone: make(map[string]uint64),
		groups:         make(map[string]bool),
	}
}

// reloadBegins notes when a reload was asked, for its duration.
func (mm *masterMetrics) reloadBegins() {
	if mm.reloadAsked.IsZero() {
		mm.reloadAsked = time.Now()
	}
}

// reloadEnded counts a reload and, if it worked, how long it took from the
// signal to the new worker being ready.
func (mm *masterMetrics) reloadEnded(ok bool) {
	if ok {
		mm.reloadsOK.Inc()
		if !mm.reloadAsked.IsZero() {
			mm.reloadDuration.UpdateDuration(mm.reloadAsked)
		}
	} else {
		mm.reloadsFailed.Inc()
	}
	mm.reloadAsked = time.Time{}
}

// workerGone takes the counts of a worker that exited into the totals,
// and its drain's duration. A current worker that died is a restart.
func (m *master) workerGone(w *worker) {
	mm := m.ops.metrics
	if s := w.report.stats; s != nil {
		for _, g := range s.Groups {
			mm.acceptedGone[g.Name] += g.Accepted
			mm.handedOverGone[g.Name] += g.HandedOver
		}
	}
	w.report.stats = nil
	switch {
	case w.state == workerDraining:
		mm.drainDuration.UpdateDuration(w.drained)
	case w == m.current && m.stopping == "":
		mm.restarts.Inc()
	}
	m.updateMetrics()
}

// updateMetrics sets the gauges and per-group counters from the workers'
// latest reports.
func (m *master) updateMetrics() {
	mm := m.ops.metrics
	if m.current != nil {
		mm.generation.Set(float64(m.current.gen))
	}
	serving, draining := 0, 0
	type counts struct {
		active, idle         int
		accepted, handedOver uint64
	}
	byGroup := make(map[string]*counts)
	for name := range mm.groups {
		byGroup[name] = &counts{}
	}
	for i := range m.cfg.Groups {
		mm.groups[m.cfg.Groups[i].Name] = true
		byGroup[m.cfg.Groups[i].Name] = &counts{}
	}
	for _, w := range m.workers {
		switch w.state {
		case workerServing:
			serving++
		case workerDraining:
			draining++
		}
		if w.report.stats == nil {
			continue
		}
		for _, g := range w.report.stats.Groups {
			c := byGroup[g.Name]
			if c == nil {
				c = &counts{}
				byGroup[g.Name] = c
				mm.groups[g.Name] = true
			}
			c.active += g.Active
			c.idle += g.Idle
			c.accepted += g.Accepted
			c.handedOver += g.HandedOver
		}
	}
	mm.serving.Set(float64(serving))
	mm.draining.Set(float64(draining))
	for name, c := range byGroup {
		q := quoteLabel(name)
		mm.set.GetOrCreateGauge(fmt.Sprintf(`gozd_connections{group=%s,state="active"}`, q), nil).Set(float64(c.active))
		mm.set.GetOrCreateGauge(fmt.Sprintf(`gozd_connections{group=%s,state="idle"}`, q), nil).Set(float64(c.idle))
		mm.set.GetOrCreateCounter(fmt.Sprintf(`gozd_accepted_connections_total{group=%s}`, q)).Set(mm.acceptedGone[name] + c.accepted)
		mm.set.GetOrCreateCounter(fmt.Sprintf(`gozd_handed_over_connections_total{group=%s}`, q)).Set(mm.handedOverGone[name] + c.handedOver)
	}
}

// quoteLabel quotes a label value. Group names are letters, digits, '-',
// '_' and '.', so there is nothing to escape; strconv-style quoting would
// escape differently from Prometheus anyway.
func quoteLabel(v string) string { return `"` + v + `"` }

// answerScrape sends w the master's metrics. It runs on w's readControl
// goroutine: the Set is safe to render there, and the loop does not wait.
func (m *master) answerScrape(w *worker) {
	var b bytes.Buffer
	m.ops.metrics.set.WritePrometheus(&b)
	text, err := json.Marshal(b.String())
	if err != nil {
		return
	}
	w.send(controlMsg{kind: msgMetrics, payload: string(text)}.String())
	m.trim.afterWork()
}

// masterMetricsClient fetches the master's metrics for a worker, one
// scrape at a time.
type masterMetricsClient struct {
	mu      sync.Mutex
	send    func(controlMsg)
	replies chan string
}

func newMasterMetricsClient(send func(controlMsg)) *masterMetricsClient {
	return &masterMetricsClient{send: send, replies: make(chan string, 1)}
}

// fetch asks the master and waits for its answer, at most scrapeTimeout.
func (c *masterMetricsClient) fetch() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.replies: // the late answer to a scrape that gave up
	default:
	}
	c.send(controlMsg{kind: msgScrape})
	select {
	case text := <-c.replies:
		return text, nil
	case <-time.After(scrapeTimeout):
		return "", errors.New("the master did not answer")
	}
}

// deliver hands the master's answer to the waiting scrape.
func (c *masterMetricsClient) deliver(payload string) {
	var text string
	if json.Unmarshal([]byte(payload), &text) != nil {
		return
	}
	select {
	case c.replies <- text:
	default:
	}
}

// metricsOps is a Daemon's part of the metrics endpoint.
type metricsOps struct {
	master atomic.Pointer[masterMetricsClient] // nil outside a worker of a master that reports
}

// serveMetrics answers a scrape: the master's metrics, then this
// process's Go runtime and process metrics.
func (gs *groupServer) serveMetrics(w http.ResponseWriter) {
	var b bytes.Buffer
	if c := gs.ops.metrics.master.Load(); c != nil {
		text, err := c.fetch()
		if err != nil {
			gs.log.Warn("metrics: only this worker's own", "err", err)
		}
		b.WriteString(text)
	}
	metrics.ExposeMetadata(true)
	metrics.WriteProcessMetrics(&b)
	metrics.WriteFDMetrics(&b)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

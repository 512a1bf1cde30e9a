package gozd

import (
	"encoding/json"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// What workers tell a master that asks for it (handover.Reports): their
// build once, before "ready", and their connections, whenever they change,
// at most every reportInterval. The master keeps the latest in its state
// file for -s status. A master that does not ask (an older gozd whose
// worker is a newer binary) gets neither, so it has nothing to warn about.
const (
	msgBuild = "build" // worker → master: build {buildInfo}
	msgStats = "stats" // worker → master: stats {workerStats}

	reportInterval = 250 * time.Millisecond
	// statusSaveInterval bounds how often connection counts rewrite the
	// state file: under load they change all the time.
	statusSaveInterval = time.Second
)

// parseReportMsg decodes the messages of this file. ok is false for a kind
// it does not know.
func parseReportMsg(kind, arg string, hasArg bool) (m controlMsg, ok bool, err error) {
	switch kind {
	case msgBuild, msgStats, msgTimeline:
		if !hasArg || !strings.HasPrefix(arg, "{") || !json.Valid([]byte(arg)) {
			return controlMsg{}, true, fmt.Errorf("control message %q: want a JSON object", kind)
		}
		return controlMsg{kind: kind, payload: arg}, true, nil
	case msgMetrics:
		if !hasArg || !strings.HasPrefix(arg, `"`) || !json.Valid([]byte(arg)) {
			return controlMsg{}, true, fmt.Errorf("control message %q: want a JSON string", kind)
		}
		return controlMsg{kind: kind, payload: arg}, true, nil
	case msgLameDuck, msgScrape:
		if hasArg {
			return controlMsg{}, true, fmt.Errorf("control message %q takes no argument", kind)
		}
		return controlMsg{kind: kind}, true, nil
	}
	return controlMsg{}, false, nil
}

// buildInfo is what a binary says of its build (debug.ReadBuildInfo).
type buildInfo struct {
	Path     string `json:"path,omitempty"`    // main package
	Version  string `json:"version,omitempty"` // main module version; "(devel)" for a local build
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"` // of the revision
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go,omitempty"`
}

// readBuildInfo returns this binary's build, nil if it carries none.
func readBuildInfo() *buildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	b := &buildInfo{Path: bi.Path, Version: bi.Main.Version, Go: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the build on one line, e.g. "example.com/app v1.2.0 rev
// 0123abcd4567 (modified), go1.26.0".
func (b *buildInfo) String() string {
	if b == nil {
		return "unknown"
	}
	parts := []string{}
	if b.Path != "" {
		parts = append(parts, b.Path)
	}
	if b.Version != "" {
		parts = append(parts, b.Version)
	}
	if b.Revision != "" {
		rev := b.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if b.Modified {
			rev += " (modified)"
		}
		parts = append(parts, "rev "+rev)
	}
	s := strings.Join(parts, " ")
	if b.Go != "" {
		if s != "" {
			s += ", "
		}
		s += b.Go
	}
	if s == "" {
		return "unknown"
	}
	return s
}

// workerStats are a worker's connections, group by group.
type workerStats struct {
	Groups []groupStats `json:"groups"`
}

// groupStats are one group's connections in one worker.
type groupStats struct {
	Name       string         `json:"name"`
	Active     int            `json:"active"`                // busy: a request or a tcp handler running
	Idle       int            `json:"idle"`                  // HTTP keep-alive or FastCGI kept, between requests
	Accepted   uint64         `json:"accepted"`              // since the worker started
	HandedOver uint64         `json:"handed_over,omitempty"` // received from the previous worker
	Kinds      map[string]int `json:"kinds,omitempty"`       // open connections by kind (kind* constants)
}

// connections is the group's open connections.
func (g groupStats) connections() int { return g.Active + g.Idle }

// connections is every open connection of the worker.
func (s *workerStats) connections() int {
	if s == nil {
		return 0
	}
	n := 0
	for _, g := range s.Groups {
		n += g.connections()
	}
	return n
}

// group returns the stats of group name.
func (s *workerStats) group(name string) (groupStats, bool) {
	if s != nil {
		for _, g := range s.Groups {
			if g.Name == name {
				return g, true
			}
		}
	}
	return groupStats{}, false
}

// Kinds of connections, as the drain reports what held it.
const (
	kindHTTPActive = "http active"
	kindHTTPIdle   = "http idle"
	kindHijacked   = "hijacked"
	kindTCP        = "tcp"
	kindFCGI       = "fcgi"
	kindOther      = "other"
	kindOtherIdle  = "other idle"
)

// The report counts a group's connections as they change, so that it costs
// the same with ten connections as with ten thousand and never holds the
// tracker's lock: the tracker counts connections by kind as it adds and
// forgets them (under its lock, once per connection), and HTTP and FastCGI
// connections move themselves between busy, idle and hijacked with one
// atomic status word each, without the lock, on the per-request path.

// Bits of a connection's status word (connStatus).
const (
	statusTracked  = 1 << iota // in the group's tracker, and so counted
	statusIdle                 // between requests
	statusHijacked             // an HTTP handler took the connection over

	// FastCGI only (handoff_fcgi.go).
	statusMidRecord // a record is partly read
	statusMoving    // handing over: the blocked read is woken
	statusClosed
	statusMoreOpen // more requests open than the slots hold (fcgiMove.more)
)

// Bits of an HTTP connection's status word, in the places of FastCGI's: a
// word is one or the other.
const (
	statusBusy  = statusMidRecord // a request is being read or answered (StateActive)
	statusRead  = statusMoving    // bytes arrived since StateIdle: the next request's
	statusEarly = statusClosed    // net/http's background read took the next request's first byte
)

// connStatus is the status word of an HTTP or FastCGI connection.
type connStatus struct{ atomic.Uint64 }

// change sets and clears bits of the word and returns it before and after.
func (s *connStatus) change(set, clear uint64) (old, new uint64) {
	for {
		old = s.Load()
		new = old&^clear | set
		if new == old || s.CompareAndSwap(old, new) {
			return old, new
		}
	}
}

// toIdle follows net/http's StateIdle on an HTTP connection: reads from
// here on are the next request's, and so is the byte a background read took
// while the response was written.
func (s *connStatus) toIdle() (old, new uint64) {
	for {
		old = s.Load()
		new = old&^(statusBusy|statusRead) | statusIdle
		if old&statusEarly != 0 {
			new |= statusRead
		}
		if new == old || s.CompareAndSwap(old, new) {
			return old, new
		}
	}
}

// countedAs reports how status word s is counted: idle, hijacked, or
// (neither) active; untracked words count as nothing.
func countedAs(s uint64) (idle, hijacked bool) {
	switch {
	case s&statusTracked == 0:
		return false, false
	case s&statusHijacked != 0:
		return false, true
	}
	return s&statusIdle != 0, false
}

// connCounts are a group's open connections, for the report. Each kind's
// total changes under the tracker's lock; the idle and hijacked counts
// follow the status words. The counts sit on cache lines of their own:
// every request writes one, and the per-request path reads the tracker's
// draining flag.
type connCounts struct {
	_        [64]byte
	http     atomic.Int64 // HTTP connections (idle and hijacked included)
	httpIdle atomic.Int64
	hijacked atomic.Int64
	_        [64]byte
	fcgi     atomic.Int64 // FastCGI connections (idle included)
	fcgiIdle atomic.Int64
	_        [64]byte
	// Taken over from the previous worker and parked until their
	// first byte (handoff_park.go): idle, and not in the counts above.
	parkedHTTP atomic.Int64
	parkedFCGI atomic.Int64
	_          [64]byte
	tcp        atomic.Int64
	other      atomic.Int64 // connections of server values, udp handlers (idle included)
	otherIdle  atomic.Int64
	_          [64]byte
}

// parked counts delta connections of a group of mode as parked.
func (n *connCounts) parked(mode Mode, delta int64) {
	if mode == ModeFCGI {
		n.parkedFCGI.Add(delta)
	} else {
		n.parkedHTTP.Add(delta)
	}
}

// trackedKind is how the tracker counts a connection.
type trackedKind uint8

const (
	trackedOther trackedKind = iota
	trackedHTTP
	trackedFCGI
	trackedTCP
)

// kindOf says how tracked connection c is counted, and returns its status
// word if it keeps one.
func kindOf(c net.Conn) (trackedKind, *connStatus) {
	switch c := c.(type) {
	case *tcpConn:
		return trackedTCP, nil
	case *fcgiConn:
		return trackedFCGI, &c.status
	}
	if hc := asHTTPConn(c); hc != nil {
		return trackedHTTP, &hc.status
	}
	return trackedOther, nil
}

func (n *connCounts) total(kind trackedKind) *atomic.Int64 {
	switch kind {
	case trackedHTTP:
		return &n.http
	case trackedFCGI:
		return &n.fcgi
	case trackedTCP:
		return &n.tcp
	}
	return &n.other
}

// recount moves a connection of kind between the idle and hijacked counts
// as its status word went from old to new.
func (n *connCounts) recount(kind trackedKind, old, new uint64) {
	oldIdle, oldHijacked := countedAs(old)
	newIdle, newHijacked := countedAs(new)
	if oldIdle != newIdle {
		idle := &n.httpIdle
		if kind == trackedFCGI {
			idle = &n.fcgiIdle
		}
		if newIdle {
			idle.Add(1)
		} else {
			idle.Add(-1)
		}
	}
	if oldHijacked != newHijacked {
		if newHijacked {
			n.hijacked.Add(1)
		} else {
			n.hijacked.Add(-1)
		}
	}
}

// countLocked counts c in (add) or out of the group, as the tracker adds
// or forgets it; st is its entry.
func (t *connTracker) countLocked(c net.Conn, st connState, add bool) {
	kind, status := kindOf(c)
	delta := int64(1)
	if !add {
		delta = -1
	}
	t.counts.total(kind).Add(delta)
	switch {
	case status != nil && add:
		old, new := status.change(statusTracked, 0)
		t.counts.recount(kind, old, new)
	case status != nil:
		old, new := status.change(0, statusTracked)
		t.counts.recount(kind, old, new)
	case kind == trackedOther && st.idle:
		t.counts.otherIdle.Add(delta)
	}
}

// stats counts the tracker's connections: a few atomic loads, whatever
// their number. Counts read while connections change may be off by the
// changes under way; the next report has them right.
func (t *connTracker) stats(name string) groupStats {
	// A connection taken over was accepted by an earlier worker: it
	// counts as handed over, not accepted again. (It is counted over when
	// delivered, and added when its server takes it: hence the guard.)
	g := groupStats{Name: name, HandedOver: t.handedOver.Load()}
	if a := t.accepted.Load(); a > g.HandedOver {
		g.Accepted = a - g.HandedOver
	}
	n := &t.counts
	load := func(v *atomic.Int64) int { return max(int(v.Load()), 0) }
	httpIdle, hijacked, fcgiIdle, otherIdle := load(&n.httpIdle), load(&n.hijacked), load(&n.fcgiIdle), load(&n.otherIdle)
	httpActive := max(load(&n.http)-httpIdle-hijacked, 0)
	fcgi := max(load(&n.fcgi), fcgiIdle)
	parkedFCGI := load(&n.parkedFCGI)
	httpIdle += load(&n.parkedHTTP)
	fcgi, fcgiIdle = fcgi+parkedFCGI, fcgiIdle+parkedFCGI
	other := max(load(&n.other)-otherIdle, 0)
	tcp := load(&n.tcp)
	g.Idle = httpIdle + fcgiIdle + otherIdle
	g.Active = httpActive + hijacked + (fcgi - fcgiIdle) + tcp + other
	for _, k := range [...]struct {
		kind  string
		count int
	}{
		{kindHTTPActive, httpActive}, {kindHTTPIdle, httpIdle}, {kindHijacked, hijacked},
		{kindTCP, tcp}, {kindFCGI, fcgi}, {kindOther, other}, {kindOtherIdle, otherIdle},
	} {
		if k.count > 0 {
			if g.Kinds == nil {
				g.Kinds = make(map[string]int)
			}
			g.Kinds[k.kind] = k.count
		}
	}
	return g
}

// stats counts the connections of every group, in config order.
func (d *Daemon) stats() *workerStats {
	d.mu.Lock()
	groups := d.groups
	d.mu.Unlock()
	s := &workerStats{Groups: make([]groupStats, 0, len(groups))}
	for _, gs := range groups {
		s.Groups = append(s.Groups, gs.tracker.stats(gs.cfg.Name))
	}
	return s
}

// heldBy describes what keeps a drain from finishing: "web: 2 http
// active, 1 hijacked; echo: 1 tcp".
func (s *workerStats) heldBy() string {
	if s == nil {
		return "unknown"
	}
	var groups []string
	for _, g := range s.Groups {
		if len(g.Kinds) == 0 {
			continue
		}
		var kinds []string
		for _, k := range []string{kindHTTPActive, kindHTTPIdle, kindHijacked, kindTCP, kindFCGI, kindOther, kindOtherIdle} {
			if n := g.Kinds[k]; n > 0 {
				kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
			}
		}
		groups = append(groups, g.Name+": "+strings.Join(kinds, ", "))
	}
	return strings.Join(groups, "; ")
}

// reportToMaster sends this worker's connections whenever they change, at
// most every reportInterval, until done is closed. send writes one message.
func reportToMaster(d *Daemon, send func(controlMsg), done <-chan struct{}) {
	last := ""
	tick := time.NewTicker(reportInterval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		b, err := json.Marshal(d.stats())
		if err != nil || string(b) == last {
			continue
		}
		last = string(b)
		send(controlMsg{kind: msgStats, payload: last})
	}
}

// buildMsg is the "build" message of this binary.
func buildMsg() (controlMsg, bool) {
	b, err := json.Marshal(readBuildInfo())
	if err != nil || string(b) == "null" {
		return controlMsg{}, false
	}
	return controlMsg{kind: msgBuild, payload: string(b)}, true
}

// masterOps is the master's state for operators: status, lame duck.
type masterOps struct {
	started    time.Time
	statusSave struct {
		last    time.Time // of the last write of the state file
		pending bool      // a write is scheduled
	}
	reopens   int    // SIGUSR1s handled, for -s reopen to see its own
	reopenErr string // why the last reopen failed
	lameDuck  int    // lameDuckNone, lameDuckOn or lameDuckOver (lameduck.go)
	log       *logSettings
	metrics   *masterMetrics
}

// workerReport is what the master knows of a worker from its reports.
type workerReport struct {
	build *buildInfo
	stats *workerStats
}

// reportEvent turns a report message of w into an event for the loop. A
// scrape is answered at once, off the loop.
func (m *master) reportEvent(w *worker, msg controlMsg) (event, bool) {
	switch msg.kind {
	case msgBuild, msgStats, msgTimeline:
		return event{kind: evReport, w: w, msg: msg}, true
	case msgScrape:
		m.answerScrape(w)
	}
	return event{}, false
}

// takeReport records a worker's report; the state file follows, at most every
// statusSaveInterval.
func (m *master) takeReport(ev event) {
	w := ev.w
	switch ev.msg.kind {
	case msgBuild:
		var b buildInfo
		if err := json.Unmarshal([]byte(ev.msg.payload), &b); err != nil {
			m.log.Warn("ignoring a bad build report", "worker", w.pid, "gen", w.gen, "err", err)
			return
		}
		w.report.build = &b
	case msgStats:
		var s workerStats
		if err := json.Unmarshal([]byte(ev.msg.payload), &s); err != nil {
			m.log.Warn("ignoring a bad connection report", "worker", w.pid, "gen", w.gen, "err", err)
			return
		}
		w.report.stats = &s
		m.updateMetrics()
	case msgTimeline:
		if err := w.takeTimeline(ev.msg.payload); err != nil {
			m.log.Warn("ignoring a bad timeline", "worker", w.pid, "gen", w.gen, "err", err)
		}
		return
	}
	if m.workers[w.pid] == w {
		m.saveStatusSoon()
	}
	m.trim.afterWork() // once the reports stop, what they touched
}

// saveStatusSoon writes the state file now, or once statusSaveInterval has
// passed since the last write.
func (m *master) saveStatusSoon() {
	if m.ops.statusSave.pending {
		return
	}
	if wait := statusSaveInterval - time.Since(m.ops.statusSave.last); wait > 0 {
		m.ops.statusSave.pending = true
		time.AfterFunc(wait, func() { m.events <- event{kind: evSaveStatus} })
		return
	}
	m.saveStatus()
}

// readyMessages returns what a worker writes to its master once it serves,
// in one write: its build, if the master asks for reports (before "ready",
// so that the master has it when it promotes the worker), its timeline, if
// asked, and "ready". The build is encoded from now on, in a goroutine of its
// own, while the program registers its handlers: the JSON encoder's first
// run is a millisecond or more of a new process, that a reload would
// otherwise wait for.
func readyMessages(h *handover) func() string {
	var build func() (controlMsg, bool)
	if h.Reports {
		build = sync.OnceValues(buildMsg)
		go build()
	}
	return func() string {
		var b strings.Builder
		if build != nil {
			if msg, ok := build(); ok {
				b.WriteString(msg.String() + "\n")
			}
		}
		if h.Timeline {
			b.WriteString(timelineMsg().String() + "\n")
		}
		b.WriteString(msgReady + "\n")
		return b.String()
	}
}

// startReports makes a worker whose master asks for reports send its
// connections whenever they change, from now on, and answer scrapes with
// the master's metrics. send writes one message to the master.
func startReports(h *handover, d *Daemon, send func(controlMsg), done <-chan struct{}) {
	if !h.Reports {
		return
	}
	d.ops.metrics.master.Store(newMasterMetricsClient(send))
	go reportToMaster(d, send, done)
}

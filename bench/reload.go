package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	bucket     = 100 * time.Millisecond // resolution of the chart
	maxBuckets = 6000                   // 10 minutes
)

// The reload run's load, by kind of client.
var loadKinds = []struct {
	name    string
	clients int
}{
	{"http keep-alive", 16}, // net/http client, pooled connections
	{"http new conn", 8},    // net/http client, keep-alives off
	{"tcp connect+echo", 8}, // connect, echo a line, close
}

// loadGen is the traffic of a reload run: standard clients in a closed
// loop, every outcome counted per kind and per 100 ms.
type loadGen struct {
	start    time.Time
	stop     chan struct{}
	wg       sync.WaitGroup
	ok, fail [maxBuckets]atomic.Int64
	kindOK   []atomic.Int64
	kindFail []atomic.Int64

	mu   sync.Mutex
	errs map[string]int // "kind: message" → count

	clients []*http.Client
}

var addrPattern = regexp.MustCompile(`127\.0\.0\.1:\d+`)

func (g *loadGen) record(kind int, err error) {
	i := min(int(time.Since(g.start)/bucket), maxBuckets-1)
	if err == nil {
		g.ok[i].Add(1)
		g.kindOK[kind].Add(1)
		return
	}
	g.fail[i].Add(1)
	g.kindFail[kind].Add(1)
	msg := loadKinds[kind].name + ": " + addrPattern.ReplaceAllString(err.Error(), "ADDR")
	g.mu.Lock()
	g.errs[msg]++
	g.mu.Unlock()
}

func startLoad(s *server) *loadGen {
	g := &loadGen{
		start: time.Now(), stop: make(chan struct{}), errs: map[string]int{},
		kindOK: make([]atomic.Int64, len(loadKinds)), kindFail: make([]atomic.Int64, len(loadKinds)),
	}
	url := "http://" + s.httpAddr + "/"
	pooled := &http.Client{Timeout: opTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	fresh := &http.Client{Timeout: opTimeout, Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	g.clients = []*http.Client{pooled, fresh}
	get := func(c *http.Client) error { return checkHello(c.Get(url)) }
	ops := []func(buf []byte) error{
		func([]byte) error { return get(pooled) },
		func([]byte) error { return get(fresh) },
		func(buf []byte) error { return echoOnce(s.tcpAddr, buf) },
	}
	for k, kind := range loadKinds {
		for range kind.clients {
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				buf := make([]byte, 64)
				for {
					select {
					case <-g.stop:
						return
					default:
					}
					g.record(k, ops[k](buf))
				}
			}()
		}
	}
	return g
}

func (g *loadGen) finish() time.Duration {
	close(g.stop)
	g.wg.Wait()
	took := time.Since(g.start)
	for _, c := range g.clients {
		c.CloseIdleConnections()
	}
	return took
}

// reloadRun is one server's run of reloads under load.
type reloadRun struct {
	server    string
	reloads   int
	dur       time.Duration
	ok, fail  []int64         // per bucket
	marks     []time.Duration // when each reload was signalled, from the start
	served    []time.Duration // signal → first answer from the new build
	readyLog  []time.Duration // gozd's "worker ready after=" figures
	steps     []stepsServed   // gozd's start steps, and when the new build answered
	failedRel int             // reloads whose new build never answered
	kindOK    []int64
	kindFail  []int64
	errs      []string // "N × kind: message", most frequent first
	errCounts map[string]int
	rounds    []time.Duration // each round's median signal → new build answers, 0 if none answered
}

func (r *reloadRun) total() (ok, fail int64) {
	for i := range r.kindOK {
		ok += r.kindOK[i]
		fail += r.kindFail[i]
	}
	return ok, fail
}

// runReloadRounds reloads each server env.s.reloads times under load, in
// env.s.reloadRounds rounds: in each, every server is started, loaded and
// reloaded its share of the times, gozd first in even rounds and tableflip
// first in odd ones. The machine's speed drifts over a run (here by a
// quarter between two runs a minute apart); measured round by round, side
// by side, the drift falls on both servers alike.
func runReloadRounds(env *runEnv, step func(string)) ([]*reloadRun, error) {
	names := []string{"gozd", "tableflip"}
	runs := map[string]*reloadRun{}
	rounds := max(1, min(env.s.reloadRounds, env.s.reloads))
	for round := range rounds {
		for _, name := range roundOrder(names, round) {
			step(fmt.Sprintf("reloads under load: %s, round %d of %d", name, round+1, rounds))
			rr, err := runReloads(env, name, roundShare(env.s.reloads, rounds, round))
			if err != nil {
				return nil, err
			}
			if runs[name] == nil {
				runs[name] = &reloadRun{server: name, errCounts: map[string]int{}}
			}
			runs[name].add(rr)
		}
	}
	var out []*reloadRun
	for _, name := range names {
		rr := runs[name]
		rr.sortErrs()
		out = append(out, rr)
	}
	return out, nil
}

// add appends round r's figures to rr: its timeline after rr's buckets, its
// counts to rr's.
func (rr *reloadRun) add(r *reloadRun) {
	off := time.Duration(len(rr.ok)) * bucket
	for _, m := range r.marks {
		rr.marks = append(rr.marks, off+m)
	}
	rr.dur = off + time.Duration(len(r.ok))*bucket
	rr.ok = append(rr.ok, r.ok...)
	rr.fail = append(rr.fail, r.fail...)
	rr.reloads += r.reloads
	rr.served = append(rr.served, r.served...)
	rr.readyLog = append(rr.readyLog, r.readyLog...)
	rr.steps = append(rr.steps, r.steps...)
	rr.failedRel += r.failedRel
	if rr.kindOK == nil {
		rr.kindOK, rr.kindFail = make([]int64, len(r.kindOK)), make([]int64, len(r.kindFail))
	}
	for k := range r.kindOK {
		rr.kindOK[k] += r.kindOK[k]
		rr.kindFail[k] += r.kindFail[k]
	}
	for msg, n := range r.errCounts {
		rr.errCounts[msg] += n
	}
	var med time.Duration // 0: no reload of the round answered
	if len(r.served) > 0 {
		med = durSpreadOf(r.served).med
	}
	rr.rounds = append(rr.rounds, med)
}

// sortErrs lists the errors counted, most frequent first.
func (rr *reloadRun) sortErrs() {
	type count struct {
		msg string
		n   int
	}
	var counts []count
	for msg, n := range rr.errCounts {
		counts = append(counts, count{msg, n})
	}
	sort.Slice(counts, func(i, j int) bool {
		if counts[i].n != counts[j].n {
			return counts[i].n > counts[j].n
		}
		return counts[i].msg < counts[j].msg
	})
	rr.errs = rr.errs[:0]
	for _, c := range counts {
		rr.errs = append(rr.errs, fmt.Sprintf("%d × %s", c.n, c.msg))
	}
}

// runReloads starts the named server, loads it, and reloads it into the
// other build, installed on disk by rename, reloads times.
func runReloads(env *runEnv, name string, reloads int) (*reloadRun, error) {
	s, err := env.start(name, versions[0])
	if err != nil {
		return nil, err
	}
	defer s.stop()
	rr := &reloadRun{server: name, reloads: reloads, errCounts: map[string]int{}}
	g := startLoad(s)
	stopped := false
	defer func() {
		if !stopped {
			g.finish()
		}
	}()
	time.Sleep(500 * time.Millisecond) // a baseline before the first reload

	for i := 1; i <= reloads; i++ {
		want := versions[i%2]
		if err := install(env.bins[name][want], s.bin); err != nil {
			return nil, err
		}
		old := s.serving
		from := s.log.mark()
		t0 := time.Now()
		rr.marks = append(rr.marks, t0.Sub(g.start))
		if err := s.signalReload(); err != nil {
			return nil, err
		}
		seen, err := waitVersion(s.httpAddr, want, 10*time.Second)
		if err != nil {
			rr.failedRel++
			logf("  reload %d: %v", i, err)
			continue
		}
		rr.served = append(rr.served, seen.Sub(t0))
		after, err := s.reloaded(from, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("%s reload %d: %w\n%s", name, i, err, s.log.tail(20))
		}
		if name == "gozd" {
			rr.readyLog = append(rr.readyLog, after)
			if st, ok := readySteps(s.lastReady); ok {
				rr.steps = append(rr.steps, stepsServed{startSteps: st, served: seen.Sub(t0), stop: s.stoppedAccepting(from, old)})
			}
		}
		// tableflip refuses to upgrade again before the old process
		// is gone; wait for it with gozd too, so both runs pace alike.
		if err := s.waitGone(old, 15*time.Second); err != nil {
			return nil, err
		}
		time.Sleep(env.s.spacing)
	}
	time.Sleep(500 * time.Millisecond)
	rr.dur = g.finish()
	stopped = true

	// Whole buckets only: a partial last one would read as a dip in the
	// chart, and the next round's buckets would not line up with its marks.
	n := min(int(rr.dur/bucket), maxBuckets)
	for i := range n {
		rr.ok = append(rr.ok, g.ok[i].Load())
		rr.fail = append(rr.fail, g.fail[i].Load())
	}
	for k := range loadKinds {
		rr.kindOK = append(rr.kindOK, g.kindOK[k].Load())
		rr.kindFail = append(rr.kindFail, g.kindFail[k].Load())
	}
	for msg, n := range g.errs {
		rr.errCounts[msg] += n
	}
	rr.sortErrs()
	ok, fail := rr.total()
	logf("  %s: %d reloads, %d requests, %d failed; signal→serving %v", name, reloads, ok+fail, fail, durSpreadOf(rr.served))
	if len(rr.steps) > 0 {
		logf("  %s: steps under load, medians: %s", name, stepsLine(rr.steps))
	}
	for _, e := range rr.errs {
		logf("    %s", e)
	}
	return rr, nil
}

// exitRun is the time from an old process's last connection closing to
// its exit, measured over several idle reloads.
type exitRun struct {
	server   string
	floor    []time.Duration // the binary started with -h, until it exits
	times    []time.Duration
	served   []time.Duration // signal → new build answers, without load
	startCPU []time.Duration // the new serving process's CPU time from its fork (exec included) until the new build answered, without load
	readyLog []time.Duration // gozd's "worker ready after=", without load
	steps    []stepsServed   // gozd's start steps, without load
	nothing  []time.Duration // a Go program that does nothing, exec to exit: the floor of any start
}

// stepsServed is one reload's start steps and its signal → new build
// answers.
type stepsServed struct {
	startSteps
	served time.Duration
	stop   time.Duration // the drain order until the old worker's reply, its listeners closed (its "worker draining" after=); 0 when not logged
}

// exitRounds is how many rounds the idle reloads (and the start floors) of
// the exit phase are split into, the servers taking turns in each, as in
// the reloads under load: measured one server after the other, the machine's
// drift between the two had put either ahead by a few milliseconds.
const exitRounds = 4

// floorStarts is how many starts with -h time each start floor.
const floorStarts = 20

// runExitRounds runs the exit phase of each of names in exitRounds rounds,
// in the given order in even rounds and in reverse in odd ones. step names
// what runs next.
func runExitRounds(env *runEnv, names []string, step func(string)) ([]*exitRun, error) {
	runs := map[string]*exitRun{}
	var out []*exitRun
	for _, name := range names {
		runs[name] = &exitRun{server: name}
		out = append(out, runs[name])
	}
	rounds := max(1, min(exitRounds, env.s.exitSamples))
	for r := range rounds {
		samples, floors := roundShare(env.s.exitSamples, rounds, r), roundShare(floorStarts, rounds, r)
		for _, name := range roundOrder(names, r) {
			step(fmt.Sprintf("exit after last close: %s, round %d of %d", name, r+1, rounds))
			if err := runExitAfterClose(env, runs[name], samples, floors); err != nil {
				return nil, err
			}
		}
	}
	for _, ex := range out {
		logf("  %s: last close → exit %v; idle signal → serving %v; the new process's CPU until it answered %v", ex.server, durSpreadOf(ex.times), durSpreadOf(ex.served), durSpreadOf(ex.startCPU))
		if len(ex.steps) > 0 {
			logf("  %s: idle steps, medians: %s", ex.server, stepsLine(ex.steps))
		}
	}
	return out, nil
}

// roundShare is round r's share of total spread over rounds, the first
// rounds taking what does not divide evenly.
func roundShare(total, rounds, r int) int {
	n := total / rounds
	if r < total%rounds {
		n++
	}
	return n
}

// roundOrder is the servers' order in round r: names as given in even
// rounds, reversed in odd ones, so that neither always goes first.
func roundOrder(names []string, r int) []string {
	order := slices.Clone(names)
	if r%2 == 1 {
		slices.Reverse(order)
	}
	return order
}

// runExitAfterClose starts ex's server afresh and, samples times, holds one
// tcp connection to the serving process, reloads, waits until the old
// process drains, closes the connection and times the old process's exit by
// polling /proc every millisecond. Before that it times floors starts of the
// server's binary and of a program that does nothing. It adds to ex.
func runExitAfterClose(env *runEnv, ex *exitRun, samples, floors int) error {
	name := ex.server
	s, err := env.start(name, versions[0])
	if err != nil {
		return err
	}
	defer s.stop()
	floor, err := runStartFloor(env, name, floors)
	if err != nil {
		return err
	}
	nothing, err := runStartFloor(env, "nothing", floors)
	if err != nil {
		return err
	}
	ex.floor, ex.nothing = append(ex.floor, floor...), append(ex.nothing, nothing...)
	buf := make([]byte, 64)
	for i := 1; i <= samples; i++ {
		c, err := net.DialTimeout("tcp", s.tcpAddr, opTimeout)
		if err != nil {
			return err
		}
		// An answer proves the serving process took the connection.
		if err := echo(c, buf); err != nil {
			c.Close()
			return err
		}
		old := s.serving
		want := versions[i%2]
		if err := install(env.bins[name][want], s.bin); err != nil {
			c.Close()
			return err
		}
		from := s.log.mark()
		t0 := time.Now()
		if err := s.signalReload(); err != nil {
			c.Close()
			return err
		}
		seen, err := waitVersion(s.httpAddr, want, 10*time.Second)
		if err != nil {
			c.Close()
			return err
		}
		ex.served = append(ex.served, seen.Sub(t0))
		after, err := s.reloaded(from, 10*time.Second)
		if err != nil {
			c.Close()
			return err
		}
		// The new process has been idle since it answered the poller:
		// its CPU time so far is what its start cost, exec included
		// (the same task since the fork), up to its first answers.
		ex.startCPU = append(ex.startCPU, runTime([]int{s.serving}))
		// The old process says it drains: gozd's master logs it,
		// the tableflip server prints it when Exit fires.
		drained, _, err := s.log.waitFor(from, func(l string) bool {
			if name == "gozd" {
				return isDrainingLine(l, old)
			}
			return strings.Contains(l, fmt.Sprintf("pid %d: draining", old))
		}, 10*time.Second)
		if err != nil {
			c.Close()
			return fmt.Errorf("%s: old process %d never drained: %w; its output:\n%s", name, old, err, s.log.tail(30))
		}
		if name == "gozd" {
			ex.readyLog = append(ex.readyLog, after)
			if st, ok := readySteps(s.lastReady); ok {
				ex.steps = append(ex.steps, stepsServed{startSteps: st, served: seen.Sub(t0), stop: drainAfter(drained)})
			}
		}
		// Let the poller's connections to the old process end, so
		// that the held one is its last.
		time.Sleep(100 * time.Millisecond)
		if gone(old) {
			c.Close()
			return fmt.Errorf("%s: old process %d exited while a connection was open", name, old)
		}
		t0 = time.Now()
		c.Close()
		if err := s.waitGone(old, 15*time.Second); err != nil {
			return err
		}
		ex.times = append(ex.times, time.Since(t0))
		time.Sleep(env.s.spacing)
	}
	return nil
}

// runStartFloor times starting a server binary until it exits at once
// (-h: flag parsing after every package's init), the floor under any
// reload: a new process of that program has to get this far first.
func runStartFloor(env *runEnv, name string, n int) ([]time.Duration, error) {
	var times []time.Duration
	for range n {
		cmd := exec.Command(env.bins[name][versions[0]], "-h")
		t0 := time.Now()
		// -h exits 0 or 2 depending on the flag set; either is fine.
		if err := cmd.Run(); err != nil {
			if _, ok := err.(*exec.ExitError); !ok {
				return nil, err
			}
		}
		times = append(times, time.Since(t0))
	}
	logf("  %s: start to exit with -h %v", name, durSpreadOf(times))
	return times, nil
}

// checkHello reads a response of the bench servers' GET / (or POST /) and
// fails anything but a 200 with their greeting, as a client would count it.
func checkHello(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "hello from bench") {
		return fmt.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	return nil
}

// ratioOf is a ÷ b, 0 when b is.
func ratioOf(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// roundRatios lists, round by round, gozd's median signal → new build
// answers over tableflip's in the same round, and returns the ratios of the
// rounds where both answered.
func roundRatios(g, t *reloadRun) (string, []float64) {
	var parts []string
	var ratios []float64
	for i := range min(len(g.rounds), len(t.rounds)) {
		if g.rounds[i] == 0 || t.rounds[i] == 0 {
			parts = append(parts, "–")
			continue
		}
		r := ratioOf(g.rounds[i], t.rounds[i])
		ratios = append(ratios, r)
		parts = append(parts, fmt.Sprintf("%.2f", r))
	}
	return strings.Join(parts, ", "), ratios
}

package main

// The instruction count: how many instructions the serving process executes
// in user space per keep-alive request, counted by valgrind's cachegrind,
// with the garbage collector off. Unlike time on a shared machine, what
// gozd's own functions execute per request moves by about 1% from run to
// run (how often net/http's background read is cut short, and so how many
// deadlines it sets, depends on timing), so a change of gozd's per-request
// path of a few tens of instructions shows, by function. The totals move by a few hundred instructions from
// run to run: under cachegrind a request takes some 30 times as long, so
// the work a process does by the clock (timers, the scheduler; gozd's
// worker reports to its master every 250 ms) weighs more per request than at
// full speed, and varies. It is not time: the kernel's part of a request
// (about half of it here) is not counted, nor is a cache miss's cost, nor
// garbage collection.
//
// Each server runs twice under cachegrind, serving instrShort and then
// instrLong requests over instrConns keep-alive connections; the
// difference between the two runs is what the requests in between cost,
// start and exit cancelling out.

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

const (
	instrConns = 16
	instrShort = 2000
	instrLong  = instrShort + 30000
)

// instrServer is one server of the instruction count: a server of
// steadyLineup, or gozd built from -against.
type instrServer struct {
	name, label string
	perRequest  float64            // instructions per request, the serving process
	byFunc      map[string]float64 // the same by function
}

type instrResult struct {
	skipped  string // why nothing was counted
	servers  []instrServer
	requests int
}

func (r *instrResult) server(name string) (instrServer, bool) {
	for _, s := range r.servers {
		if s.name == name {
			return s, true
		}
	}
	return instrServer{}, false
}

// runInstructions counts plain (with gozd's timeouts) and gozd, and gozd
// built from -against when given.
func runInstructions(env *runEnv) (*instrResult, error) {
	res := &instrResult{requests: instrLong - instrShort}
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		res.skipped = "valgrind is not installed (`apt-get install valgrind`)"
		logf("  skipped: %s", res.skipped)
		return res, nil
	}
	lineup := []steadyServer{lineupServer("plain-timeouts"), lineupServer("gozd")}
	if env.s.against != "" {
		lineup = append(lineup, againstServer(env.s.against))
	}
	for _, ss := range lineup {
		version := versions[0]
		if ss.version != "" {
			version = ss.version
		}
		var runs [2]cachegrindRun
		for i, n := range []int{instrShort, instrLong} {
			if runs[i], err = countInstructions(env, vg, ss, version, n); err != nil {
				return nil, fmt.Errorf("%s under cachegrind: %w", ss.label, err)
			}
		}
		is := instrServer{name: ss.name, label: ss.label, byFunc: map[string]float64{}}
		d := float64(instrLong - instrShort)
		is.perRequest = float64(runs[1].total-runs[0].total) / d
		for fn, n := range runs[1].byFunc {
			is.byFunc[fn] = float64(n-runs[0].byFunc[fn]) / d
		}
		for fn, n := range runs[0].byFunc {
			if _, ok := runs[1].byFunc[fn]; !ok {
				is.byFunc[fn] = float64(-n) / d
			}
		}
		logf("  %-28s %8.0f instructions per request", ss.label, is.perRequest)
		res.servers = append(res.servers, is)
	}
	return res, nil
}

// cachegrindRun is what cachegrind counted in the serving process of one
// run.
type cachegrindRun struct {
	total  int64
	byFunc map[string]int64
}

// countInstructions starts ss under cachegrind, serves n keep-alive
// requests, stops it and reads the serving process's counts.
func countInstructions(env *runEnv, vg string, ss steadyServer, version string, n int) (cachegrindRun, error) {
	out, err := os.MkdirTemp(env.tmp, "cachegrind-")
	if err != nil {
		return cachegrindRun{}, err
	}
	env.under = []string{vg, "--tool=cachegrind", "--cache-sim=no", "--trace-children=yes",
		"--cachegrind-out-file=" + filepath.Join(out, "cg.%p")}
	// Without garbage collection: when a collection falls, and so how
	// many fall in the requests counted, moves the count by a few hundred
	// instructions per request from one run to the next, more than the
	// changes it is there to show.
	env.underEnv = []string{"GOGC=off"}
	s, err := env.start(ss.bin, version, ss.args...)
	env.under, env.underEnv = nil, nil
	if err != nil {
		return cachegrindRun{}, err
	}
	serving := s.serving
	err = keepAliveRequests(s.httpAddr, instrConns, n)
	s.stop()
	if err != nil {
		return cachegrindRun{}, err
	}
	return readCachegrind(filepath.Join(out, "cg."+strconv.Itoa(serving)))
}

// keepAliveRequests sends n GET requests over conns keep-alive connections.
func keepAliveRequests(addr string, conns, n int) error {
	var (
		left atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	left.Store(int64(n))
	for range conns {
		wg.Go(func() {
			h, err := dialHTTP(addr)
			if err == nil {
				defer h.c.Close()
				for left.Add(-1) >= 0 {
					if _, err = h.get(requestKeepAlive); err != nil {
						break
					}
				}
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// readCachegrind reads a cachegrind output file: the total of its summary
// line, and the counts of each function (fn= lines, then "line count"
// lines), in instructions.
func readCachegrind(path string) (cachegrindRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return cachegrindRun{}, err
	}
	defer f.Close()
	run := cachegrindRun{byFunc: map[string]int64{}}
	fn := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "fn="):
			fn = line[3:]
		case strings.HasPrefix(line, "summary:"):
			if run.total, err = strconv.ParseInt(strings.TrimSpace(line[len("summary:"):]), 10, 64); err != nil {
				return run, fmt.Errorf("%s: summary %q", path, line)
			}
		case fn != "" && line != "" && line[0] >= '0' && line[0] <= '9':
			if f := strings.Fields(line); len(f) >= 2 {
				n, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					return run, fmt.Errorf("%s: %q", path, line)
				}
				run.byFunc[fn] += n
			}
		}
	}
	if err := sc.Err(); err != nil {
		return run, err
	}
	if run.total == 0 {
		return run, fmt.Errorf("%s: no summary line", path)
	}
	return run, nil
}

// instrPart names the part of the program a function belongs to, for the
// report: gozd's own code, the Go runtime, or the rest (net/http, bufio, the
// packages under them).
func instrPart(fn string) string {
	switch {
	case strings.HasPrefix(fn, "github.com/gozd/gozd."):
		return "gozd"
	case strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/runtime/") ||
		strings.HasPrefix(fn, "gcWriteBarrier") || strings.HasPrefix(fn, "gogo") || strings.HasPrefix(fn, "aeshash") ||
		strings.HasPrefix(fn, "gosave") || strings.HasPrefix(fn, "indexbyte") || strings.HasPrefix(fn, "memeqbody"):
		return "runtime"
	case strings.HasPrefix(fn, "sync."):
		return "sync"
	}
	return "rest"
}

// instrParts sums s's per-request counts by part.
func instrParts(s instrServer) map[string]float64 {
	parts := map[string]float64{}
	for fn, n := range s.byFunc {
		parts[instrPart(fn)] += n
	}
	return parts
}

// instrDiff is one function's per-request count in two servers.
type instrDiff struct {
	fn     string
	a, b   float64
	change float64
}

// topDiffs are the k functions whose per-request counts differ most between
// a and b, largest first.
func topDiffs(a, b instrServer, k int) []instrDiff {
	var ds []instrDiff
	for fn := range b.byFunc {
		ds = append(ds, instrDiff{fn: fn, a: a.byFunc[fn], b: b.byFunc[fn], change: b.byFunc[fn] - a.byFunc[fn]})
	}
	for fn, n := range a.byFunc {
		if _, ok := b.byFunc[fn]; !ok {
			ds = append(ds, instrDiff{fn: fn, a: n, change: -n})
		}
	}
	sort.Slice(ds, func(i, j int) bool {
		if x, y := math.Abs(ds[i].change), math.Abs(ds[j].change); x != y {
			return x > y
		}
		return ds[i].fn < ds[j].fn
	})
	return ds[:min(k, len(ds))]
}

// instrTable writes the instruction count's section of the report.
func (r *report) instrTable(p func(string, ...any)) {
	ir := r.instr
	if ir == nil {
		return
	}
	p("## Instructions per request")
	p("")
	if ir.skipped != "" {
		p("Not counted: %s.", ir.skipped)
		p("")
		return
	}
	p("The user-space instructions the serving process executes per keep-alive request (GET, %d connections), counted by valgrind's cachegrind with the garbage collector off (`GOGC=off`): each server serves %d and then %d requests, each time started afresh, and the difference is divided by the %d requests in between, so that start and exit cancel out. What gozd's own functions execute per request moves by about 1% from run to run (how many read deadlines net/http sets depends on timing): a change to gozd's per-request path of a few tens of instructions shows, function by function (`go run . -only instructions -against DIR` compares another checkout). The totals move by a few hundred from run to run: under cachegrind a request takes some 30 times as long, so the work a process does by the clock (timers, the scheduler; gozd's worker reports to its master every 250 ms) weighs more per request than at full speed, and varies. Not time: the kernel's part of a request (about half of its CPU time here), a cache miss's cost and garbage collection are not counted.", instrConns, instrShort, instrLong, ir.requests)
	p("")
	ref, ok := ir.server("plain-timeouts")
	if !ok {
		return
	}
	p("| server | instructions per request | ÷ plain (gozd's timeouts) | gozd's functions | Go runtime | sync | net/http and the rest |")
	p("|---|---|---|---|---|---|---|")
	for _, s := range ir.servers {
		parts := instrParts(s)
		p("| %s | %.0f | %.3f | %.0f | %.0f | %.0f | %.0f |", s.label, s.perRequest, s.perRequest/ref.perRequest, parts["gozd"], parts["runtime"], parts["sync"], parts["rest"])
	}
	p("")
	for _, s := range ir.servers[1:] {
		base := ref
		if s.name == "gozd-against" {
			base, _ = ir.server("gozd")
		}
		p("%s against %s, the functions whose count differs most (instructions per request):", s.label, base.label)
		p("")
		p("| function | %s | %s | difference |", base.label, s.label)
		p("|---|---|---|---|")
		for _, d := range topDiffs(base, s, 16) {
			p("| `%s` | %.1f | %.1f | %+.1f |", d.fn, d.a, d.b, d.change)
		}
		p("")
	}
}

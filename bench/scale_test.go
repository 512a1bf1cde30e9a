package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// render runs the report sections of the scale and memory phases over r.
func render(r *report) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	r.scaleTables(p)
	r.memoryByProcess(p)
	for _, g := range append(r.memoryTargets(p, yes), r.scaleTargets(p, yes)...) {
		p("- %s", g)
	}
	return b.String()
}

func ds(ms ...float64) []time.Duration {
	var out []time.Duration
	for _, m := range ms {
		out = append(out, time.Duration(m*float64(time.Millisecond)))
	}
	return out
}

func TestScaleReport(t *testing.T) {
	const mb = 1 << 20
	r := &report{settings: &settings{reps: 1}}
	r.scale = &scaleResult{
		idle: []*idleConnsRun{
			{conns: 1000, served: ds(17, 18, 19), readyLog: ds(5, 6, 7), exit: ds(20, 22, 24), taken: ds(10, 11, 12), gone: ds(38, 40, 42), rss: []int64{13 * mb, 12 * mb, 14 * mb}, unusedExit: 9 * time.Millisecond, unusedGone: 30 * time.Millisecond, moved: 1000},
			{conns: 10000, served: ds(60, 61, 62), readyLog: ds(6, 7, 8), exit: ds(200, 210, 220), taken: ds(100, 101, 102), gone: ds(240, 250, 260), rss: []int64{22 * mb, 22 * mb, 23 * mb}, unusedExit: 95 * time.Millisecond, unusedGone: 120 * time.Millisecond, moved: 10000},
		},
		drains: []*drainRun{
			{conns: 1000, exit: ds(19, 19, 19), lastEOF: ds(25, 25, 25), gone: ds(31, 31, 31)},
			{conns: 10000, exit: ds(240, 240, 240), lastEOF: ds(242, 242, 242), gone: ds(260, 260, 260)},
		},
		groups: []*groupsRun{
			{groups: 1, served: ds(20), readyLog: ds(10)},
			{groups: 50, served: ds(69), readyLog: ds(59)},
		},
		cpu: []*connRateRun{
			{rate: 0, dur: 2 * time.Second, master: 100 * time.Microsecond},
			{rate: 5000, conns: 15000, dur: 3 * time.Second, master: 6 * time.Millisecond, worker: 1500 * time.Millisecond},
			{rate: 10000, conns: 30000, dur: 3 * time.Second, master: 6 * time.Millisecond, worker: 1800 * time.Millisecond},
		},
	}
	procs := func(rss ...int64) []procMem {
		var ps []procMem
		for _, x := range rss {
			ps = append(ps, procMem{hwm: x, rss: x, pss: x / 2, uss: x / 4, anon: x / 4})
		}
		return ps
	}
	r.memory = &memoryResult{conns: 10000, samples: map[string][]memSample{
		"plain":     {{idleProcs: procs(7 * mb), loadedProcs: procs(200 * mb)}},
		"gozd":      {{idleProcs: procs(9*mb, 9*mb), loadedProcs: procs(9*mb, 200*mb)}},
		"tableflip": {{idleProcs: procs(8 * mb), loadedProcs: procs(200 * mb)}},
	}, master: &masterReloads{reloads: 200, before: procMem{rss: 8 * mb}, mid: procMem{rss: 14 * mb}, after: procMem{rss: 14 * mb}}}

	out := render(r)
	for _, want := range []string{
		"| 10,000 | 61.0 ms (60.0 ms–62.0 ms) | 7.00 ms (6.00 ms–8.00 ms) | 210.0 ms (200.0 ms–220.0 ms) | 101.0 ms (100.0 ms–102.0 ms) | 250.0 ms (240.0 ms–260.0 ms) | 22.0 MiB (22.0–23.0) | 10,000 | 0 |",
		"| growth per connection | +4.8 µs | +111 ns | +20.9 µs | +10.0 µs | +23.3 µs | +1.02 KiB | | |",
		"| 10,000 | 95.0 ms | 120.0 ms |",
		"| 10,000 | 10,000 | 30,000 | 0 | 6.00 ms | 2.00 ms | 200 µs | 0 µs | 1.80 s | 60.0 ms |",
		"| growth per 1,000 more connections/s, 5,000/s → 10,000/s | | | | | +0 ns |",
		"| growth per group | +1.00 ms | +1.00 ms |",
		"| gozd: 10,000 idle connections handed over, old worker gone < 100.0 ms after the drain order (max) | 220.0 ms, 0 failed | **no** |",
		"| gozd: master CPU ≈ 0 at 10,000 new connections/s (≤ 1% of the worker's) | 200 µs per 1,000 connections, 0.33% of the worker's 60.0 ms (at 10,000/s) | yes |",
		"| gozd: master idle RSS ≤ 4 MiB | 9.0 MiB",
		"| gozd: master + worker idle RSS ≤ plain + 5 MiB | 18.0 MiB against 7.0 + 5",
		"| gozd: master RSS does not grow across 200 reloads (≤ 0.5 MiB more) | 8.00 → 14.00 MiB (+6.00) | **no** |",
		"Most of it in the first half",
		"the new worker parks it, one epoll_ctl, until its next request",
		"(two reloads back to back) has no goroutine to wake: its drain took 95.0 ms.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

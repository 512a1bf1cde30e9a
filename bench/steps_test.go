package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestStepsReport(t *testing.T) {
	steps := func(fork, main, ready, served float64) stepsServed {
		return stepsServed{startSteps: startSteps{ds(fork)[0], ds(main)[0], ds(ready)[0]}, served: ds(served)[0]}
	}
	// The drain order's reply, logged for some reloads only.
	stopped := func(st stepsServed, stop float64) stepsServed { st.stop = ds(stop)[0]; return st }
	r := &report{settings: &settings{}}
	r.reloads = []*reloadRun{
		{server: "gozd", served: ds(14, 15, 16), steps: []stepsServed{stopped(steps(1, 6, 2, 14), 0.8), steps(1, 7, 2, 15), stopped(steps(2, 7, 3, 16), 1.2)}},
		{server: "tableflip", served: ds(13, 15, 30)},
	}
	r.exits = []*exitRun{
		{server: "gozd", served: ds(8, 9, 10), floor: ds(4), nothing: ds(1.5), steps: []stepsServed{steps(0.5, 4, 1, 8), steps(0.5, 4, 1.5, 9), steps(0.6, 4.5, 1.5, 10)}},
		{server: "tableflip", served: ds(7, 8, 9), floor: ds(3.9)},
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	r.stepsTable(p)
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	gaps := r.reloadTargets(p, yes)
	out := b.String()
	for _, want := range []string{
		"| 3 without load | 500 µs | 4.00 ms | 1.50 ms | 3.00 ms | — | 9.00 ms | 8.00 ms |",
		"| 3 under load | 1.00 ms | 7.00 ms | 2.00 ms | 5.00 ms | 1.00 ms | 15.0 ms | 15.0 ms |",
		"a Go program that does nothing 1.50 ms",
		"median ≤ 0.8 × tableflip's | 15.0 ms ÷ 15.0 ms = 1.00 | **no** |",
		"p99 ≤ tableflip's | 16.0 ms vs 30.0 ms | yes |",
		"without load, median ≤ tableflip's | 9.00 ms vs 8.00 ms | **no** |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if len(gaps) != 1 || !strings.Contains(gaps[0], "exec → main alone is median 7.00 ms") {
		t.Errorf("gaps %q", gaps)
	}
}

// With rounds, the verdict on the ratio says whether the rounds' interval
// shows it beyond the run's noise.
func TestReloadTargetRounds(t *testing.T) {
	for _, c := range []struct {
		gozdRounds []float64
		want       string
	}{
		{[]float64{10, 12, 14, 16, 18, 20}, "median 0.75 [0.50–1.00] (95% CI, the 1st and 6th of the 6 sorted values, which bracket the median with probability 96.9%) | yes, within noise: the interval straddles 0.80 |"},
		{[]float64{10, 11, 12, 13, 14, 15}, "median 0.62 [0.50–0.75] (95% CI, the 1st and 6th of the 6 sorted values, which bracket the median with probability 96.9%) | yes, shown: the whole interval is on the right side of 0.80 |"},
	} {
		r := &report{settings: &settings{}}
		r.reloads = []*reloadRun{
			{server: "gozd", served: ds(12, 12, 12), rounds: ds(c.gozdRounds...)},
			{server: "tableflip", served: ds(15, 15, 15), rounds: ds(20, 20, 20, 20, 20, 20)},
		}
		r.exits = []*exitRun{{server: "gozd", served: ds(8)}, {server: "tableflip", served: ds(9)}}
		var b strings.Builder
		r.reloadTargets(func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }, func(ok bool) string { return fmt.Sprint(ok) })
		if !strings.Contains(b.String(), "= 0.80; round by round ") || !strings.Contains(b.String(), c.want) {
			t.Errorf("report lacks %q:\n%s", c.want, b.String())
		}
	}
}

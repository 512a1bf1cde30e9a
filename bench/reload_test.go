package main

import (
	"reflect"
	"testing"
	"time"
)

// Rounds merge into one run per server: the second round's timeline follows
// the first's, counts add up, errors are counted across rounds, and each
// round keeps its own median for the round-by-round ratio.
func TestReloadRoundsMerge(t *testing.T) {
	round := func(dur time.Duration, marks, served []time.Duration, ok, fail []int64, errs map[string]int) *reloadRun {
		return &reloadRun{
			reloads: len(marks), dur: dur, marks: marks, served: served, ok: ok, fail: fail,
			kindOK: []int64{10, 20}, kindFail: []int64{0, 1}, errCounts: errs,
		}
	}
	g := &reloadRun{server: "gozd", errCounts: map[string]int{}}
	g.add(round(time.Second, ds(500, 700), ds(10, 20, 20), []int64{5, 6}, []int64{0, 1}, map[string]int{"EOF": 1}))
	g.add(round(2*time.Second, ds(600), ds(30), []int64{7}, []int64{2}, map[string]int{"EOF": 2, "reset": 3}))
	g.sortErrs()

	if want := ds(500, 700, 1600); !reflect.DeepEqual(g.marks, want) {
		t.Errorf("marks %v, want %v: a round's marks follow the previous rounds' time", g.marks, want)
	}
	if g.dur != 3*time.Second || g.reloads != 3 {
		t.Errorf("dur %v reloads %d, want 3s and 3", g.dur, g.reloads)
	}
	if want := []int64{5, 6, 7}; !reflect.DeepEqual(g.ok, want) {
		t.Errorf("ok buckets %v, want %v", g.ok, want)
	}
	if want := []int64{20, 40}; !reflect.DeepEqual(g.kindOK, want) {
		t.Errorf("kindOK %v, want %v", g.kindOK, want)
	}
	if want := []string{"3 × EOF", "3 × reset"}; !reflect.DeepEqual(g.errs, want) {
		t.Errorf("errs %q, want %q", g.errs, want)
	}
	if want := ds(20, 30); !reflect.DeepEqual(g.rounds, want) {
		t.Errorf("round medians %v, want %v", g.rounds, want)
	}

	tf := &reloadRun{server: "tableflip", errCounts: map[string]int{}}
	tf.add(round(time.Second, ds(1), ds(40), nil, nil, nil))
	tf.add(round(time.Second, ds(1), ds(20), nil, nil, nil))
	if got := roundRatios(g, tf); got != "0.50, 1.50" {
		t.Errorf("round ratios %q, want \"0.50, 1.50\"", got)
	}
	if ok, fail := g.total(); ok != 60 || fail != 2 {
		t.Errorf("total %d ok, %d failed; want 60 and 2", ok, fail)
	}
}

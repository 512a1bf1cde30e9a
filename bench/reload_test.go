package main

import (
	"reflect"
	"testing"
	"time"
)

// Rounds merge into one run per server: the second round's timeline follows
// the first's buckets, counts add up, errors are counted across rounds, and
// each round keeps its own median for the round-by-round ratio.
func TestReloadRoundsMerge(t *testing.T) {
	// round is a run as runReloads leaves it: whole buckets over dur.
	round := func(dur time.Duration, marks, served []time.Duration, errs map[string]int) *reloadRun {
		n := int(dur / bucket)
		ok, fail := make([]int64, n), make([]int64, n)
		for i := range ok {
			ok[i] = 5
		}
		fail[n-1] = 1
		return &reloadRun{
			reloads: len(marks), dur: dur, marks: marks, served: served, ok: ok, fail: fail,
			kindOK: []int64{10, 20}, kindFail: []int64{0, 1}, errCounts: errs,
		}
	}
	g := &reloadRun{server: "gozd", errCounts: map[string]int{}}
	g.add(round(time.Second, ds(500, 700), ds(10, 20, 20), map[string]int{"EOF": 1}))
	g.add(round(2*time.Second, ds(600), ds(30), map[string]int{"EOF": 2, "reset": 3}))
	g.sortErrs()

	if want := ds(500, 700, 1600); !reflect.DeepEqual(g.marks, want) {
		t.Errorf("marks %v, want %v: a round's marks follow the previous rounds' buckets", g.marks, want)
	}
	if g.dur != 3*time.Second || len(g.ok) != 30 || len(g.fail) != 30 || g.reloads != 3 {
		t.Errorf("dur %v, %d ok and %d fail buckets, %d reloads; want 3s, 30, 30, 3", g.dur, len(g.ok), len(g.fail), g.reloads)
	}
	if g.fail[9] != 1 || g.fail[29] != 1 {
		t.Errorf("failures in buckets %v, want in the 10th and the 30th", g.fail)
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
	if ok, fail := g.total(); ok != 60 || fail != 2 {
		t.Errorf("total %d ok, %d failed; want 60 and 2", ok, fail)
	}

	// A round none of whose reloads answered keeps its place.
	tf := &reloadRun{server: "tableflip", errCounts: map[string]int{}}
	tf.add(round(time.Second, ds(1), nil, nil))
	tf.add(round(time.Second, ds(1), ds(20), nil))
	if got, ratios := roundRatios(g, tf); got != "–, 1.50" || !reflect.DeepEqual(ratios, []float64{1.5}) {
		t.Errorf("round ratios %q, %v; want \"–, 1.50\" and [1.5]", got, ratios)
	}
}

// The rounds split a total without losing any of it, and alternate which
// server goes first.
func TestRoundShareAndOrder(t *testing.T) {
	var shares []int
	for r := range 4 {
		shares = append(shares, roundShare(10, 4, r))
	}
	if !reflect.DeepEqual(shares, []int{3, 3, 2, 2}) {
		t.Errorf("10 over 4 rounds: %v, want [3 3 2 2]", shares)
	}
	names := []string{"gozd", "tableflip"}
	if got := roundOrder(names, 1); !reflect.DeepEqual(got, []string{"tableflip", "gozd"}) {
		t.Errorf("round 1 order %v", got)
	}
	if got := roundOrder(names, 2); !reflect.DeepEqual(got, names) || !reflect.DeepEqual(names, []string{"gozd", "tableflip"}) {
		t.Errorf("round 2 order %v (names now %v)", got, names)
	}
}

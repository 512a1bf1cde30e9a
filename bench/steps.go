package main

import (
	"fmt"
	"slices"
	"time"
)

// The reload targets: gozd's new worker answers sooner than
// tableflip's new process, in the same run.
const (
	targetServeRatio = 0.8 // gozd's median under load ≤ this × tableflip's
)

// medianOf returns the median of f over xs.
func medianOf(xs []stepsServed, f func(stepsServed) time.Duration) time.Duration {
	ds := make([]time.Duration, len(xs))
	for i, x := range xs {
		ds[i] = f(x)
	}
	return durSpreadOf(ds).med
}

// stepsTable says where a gozd reload's time goes, step by step, idle and
// under load, beside the floors under any start.
func (r *report) stepsTable(p func(string, ...any)) {
	g, ex := r.reload("gozd"), r.exit("gozd")
	if len(g.steps) == 0 || len(ex.steps) == 0 {
		return
	}
	p("## Where a gozd reload's time goes")
	p("")
	p("From the master's `worker ready` line (`signal_to_fork`: the SIGHUP handled until the new worker's process exists, its config read, bind, fork and exec; `exec_to_main`: the dynamic loader, the Go runtime's start and every package's init; `main_to_ready`: handlers registered, every group accepting, the ready message read by the master), and the bench's own *signal → new build answers*; the rest is the old worker told to drain and the polling client's next answer. *Of which, drain order → old worker's reply*: the master's `worker draining` line, `after=`, from the drain order it sends as it reads the ready to the old worker's reply, which it writes once its listeners are closed and it has taken the new worker's socket; until its listeners are closed the two workers share the accept queue. Medians. The floors: a Go program that does nothing, from exec to exit ([bench/servers/nothing](bench/servers/nothing)), and the bench's gozd server with `-h` (every package's init, then exit), both without load.")
	p("")
	p("| reloads | signal → fork | exec → main | main → ready | ready → new build answers | of which, drain order → old worker's reply | signal → new build answers | tableflip: signal → new build answers |")
	p("|---|---:|---:|---:|---:|---:|---:|---:|")
	row := func(label string, xs []stepsServed, tf []time.Duration) {
		m := stepMediansOf(xs)
		stop := "—"
		if m.stop > 0 {
			stop = ms(m.stop)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s |", label,
			ms(m.fork), ms(m.main), ms(m.ready), ms(m.rest), stop, ms(m.served), ms(durSpreadOf(tf).med))
	}
	tfIdle, tfLoad := r.exit("tableflip"), r.reload("tableflip")
	row(fmt.Sprintf("%d without load", len(ex.steps)), ex.steps, tfIdle.served)
	row(fmt.Sprintf("%d under load", len(g.steps)), g.steps, tfLoad.served)
	p("")
	p("Floors, without load: a Go program that does nothing %s from exec to exit; the gozd server with `-h` %s; the tableflip server with `-h` %s.",
		ms(durSpreadOf(ex.nothing).med), ms(durSpreadOf(ex.floor).med), ms(durSpreadOf(tfIdle.floor).med))
	p("")
}

// reloadTargets are the reload targets: gozd ahead of tableflip in
// the same run, under load (median and p99) and without.
func (r *report) reloadTargets(p func(string, ...any), yes func(bool) string) (gaps []string) {
	g, tf := r.reload("gozd"), r.reload("tableflip")
	gi, ti := r.exit("gozd"), r.exit("tableflip")
	if len(g.served) == 0 || len(tf.served) == 0 || len(gi.served) == 0 || len(ti.served) == 0 {
		return nil // a run without the reload or exit phase
	}
	gs, ts := durSpreadOf(g.served), durSpreadOf(tf.served)
	gis, tis := durSpreadOf(gi.served), durSpreadOf(ti.served)
	ratio := float64(gs.med) / float64(ts.med)
	// The medians of some 50 reloads each move by a few percent from run
	// to run. The rounds, in which the two take turns under the same
	// load, give an interval: that of the median of their ratios.
	verdict, byRound := yes(ratio <= targetServeRatio), ""
	if list, ratios := roundRatios(g, tf); len(ratios) > 1 {
		iv := medianCI(ratios)
		byRound = fmt.Sprintf("; round by round %s: median %s (95%% CI, %s)", list, iv.format(2), iv.method())
		verdict = judgement{
			met:       ratio <= targetServeRatio,
			shown:     iv.hi <= targetServeRatio,
			straddles: iv.lo <= targetServeRatio && iv.hi > targetServeRatio,
		}.says(targetServeRatio)
	}
	p("| gozd: signal → new build answers under load, median ≤ %.1f × tableflip's | %s ÷ %s = %.2f%s | %s |", targetServeRatio, ms(gs.med), ms(ts.med), ratio, byRound, verdict)
	p("| gozd: the same, p99 ≤ tableflip's | %s vs %s | %s |", ms(gs.p99), ms(ts.p99), yes(gs.p99 <= ts.p99))
	p("| gozd: the same without load, median ≤ tableflip's | %s vs %s | %s |", ms(gis.med), ms(tis.med), yes(gis.med <= tis.med))
	if ratio > targetServeRatio || gs.p99 > ts.p99 || gis.med > tis.med {
		cause := "Both start a new Go process of the same kind, and that start is most of either reload"
		if len(g.steps) > 0 {
			main := stepMediansOf(g.steps).main
			cause += fmt.Sprintf(": under load gozd's exec → main alone is median %s of its %s (see *Where a gozd reload's time goes*)", ms(main), ms(gs.med))
		}
		more := ""
		if len(gi.startCPU) > 0 && len(ti.startCPU) > 0 {
			gc, tc := durSpreadOf(gi.startCPU).med, durSpreadOf(ti.startCPU).med
			more = fmt.Sprintf(" Without load, gozd's new worker used median %s of CPU from its fork until it answered, tableflip's new process %s (%+.2f ms), and its binary's start floor (`-h`) is %s against %s",
				ms(gc), ms(tc), float64(gc-tc)/float64(time.Millisecond), ms(durSpreadOf(gi.floor).med), ms(durSpreadOf(ti.floor).med))
			if gc > tc {
				more += ": a gozd worker's start does more (the metrics library's package init, the handover from the master decoded, the build and ready messages, its priority set back once ready), and on 2 cores an idle reload is short of CPU, the polling client and the old process taking their share"
			}
			more += "."
		}
		gaps = append(gaps, fmt.Sprintf("Signal → new build answers: gozd median %s, p99 %s under load against tableflip's %s, %s (%.2f×); without load %s against %s. %s. The new worker's start at a raised priority (`start_boost`) is what puts gozd level with or ahead of tableflip under load.%s",
			ms(gs.med), ms(gs.p99), ms(ts.med), ms(ts.p99), ratio, ms(gis.med), ms(tis.med), cause, more))
	}
	return gaps
}

// stepMedians are the medians of a run's start steps; rest is what follows
// the ready until the new build answers.
type stepMedians struct {
	fork, main, ready, rest, served time.Duration
	stop                            time.Duration // of the reloads that logged it; 0 if none did
}

func stepMediansOf(xs []stepsServed) stepMedians {
	return stepMedians{
		fork:   medianOf(xs, func(x stepsServed) time.Duration { return x.fork }),
		main:   medianOf(xs, func(x stepsServed) time.Duration { return x.main }),
		ready:  medianOf(xs, func(x stepsServed) time.Duration { return x.ready }),
		rest:   medianOf(xs, func(x stepsServed) time.Duration { return x.served - x.total() }),
		served: medianOf(xs, func(x stepsServed) time.Duration { return x.served }),
		stop:   medianOf(slices.DeleteFunc(slices.Clone(xs), func(x stepsServed) bool { return x.stop <= 0 }), func(x stepsServed) time.Duration { return x.stop }),
	}
}

// stepsLine is the medians of a run's start steps, for the bench's log.
func stepsLine(xs []stepsServed) string {
	m := stepMediansOf(xs)
	return fmt.Sprintf("signal → fork %s, exec → main %s, main → ready %s, ready → answer %s (drain order → old worker's reply %s)",
		ms(m.fork), ms(m.main), ms(m.ready), ms(m.rest), ms(m.stop))
}

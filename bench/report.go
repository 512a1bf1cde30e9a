package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/gozd/gozd"
)

// report is everything one run measured.
type report struct {
	settings *settings
	began    time.Time
	took     time.Duration
	steady   *steadyResult
	reloads  []*reloadRun
	exits    []*exitRun
	memory   *memoryResult
	services *servicesRun
	phases   []phaseMark // the start of every phase, then the end

	latency []*latencyRun // latency.go
	scale   *scaleResult  // scale.go
	instr   *instrResult  // instructions.go
}

// Targets, from the issues.
const (
	targetThroughput = 0.98 // gozd's requests/s ÷ plain's with the same timeouts
	targetCPU        = 1.02 // gozd's CPU per request ÷ plain's with the same timeouts
	targetServe      = 50 * time.Millisecond
	targetExit       = 20 * time.Millisecond
)

func ms(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func durRange(s durSpread) string { return ms(s.min) + "–" + ms(s.max) }

// pairRatios are b's figure over a's, pair by pair: the samples of the
// same round, measured back to back.
func pairRatios(a, b []sample, figure func(sample) float64) []float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if figure(a[i]) > 0 {
			rs = append(rs, figure(b[i])/figure(a[i]))
		}
	}
	return rs
}

// ratio is the median of b's figure over a's, pair by pair, with its
// confidence interval.
func ratio(a, b []sample, figure func(sample) float64) interval {
	return medianCI(pairRatios(a, b, figure))
}

// vsRef is the ratio of a steady-state server's figure to its reference's
// on workload w.
func (r *report) vsRef(w workload, name string, figure func(sample) float64) interval {
	return ratio(r.steady.samples[w.name][lineupServer(name).ref], r.steady.samples[w.name][name], figure)
}

func rps(s sample) float64 { return s.rps }
func p99(s sample) float64 { return float64(s.p99) }

func cpuPerOp(s sample) float64 { return float64(s.cpuPerOp) }

func (r *report) reload(name string) *reloadRun {
	for _, rr := range r.reloads {
		if rr.server == name {
			return rr
		}
	}
	return &reloadRun{server: name}
}

func (r *report) exit(name string) *exitRun {
	for _, e := range r.exits {
		if e.server == name {
			return e
		}
	}
	return &exitRun{server: name}
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// otherLoad says how much CPU other processes took during the run, phase
// by phase, and warns when that was enough to skew the figures.
func (r *report) otherLoad() string {
	if len(r.phases) < 2 {
		return ""
	}
	first, last := r.phases[0], r.phases[len(r.phases)-1]
	used, share := first.other(last)
	var parts []string
	worst := 0.0
	for i := 0; i+1 < len(r.phases); i++ {
		_, sh := r.phases[i].other(r.phases[i+1])
		parts = append(parts, fmt.Sprintf("%s %.0f%%", r.phases[i].name, sh*100))
		worst = max(worst, sh)
	}
	msg := fmt.Sprintf("Other processes on the machine used %.0f CPU-seconds meanwhile, %.0f%% of it (by phase: %s).", used.Seconds(), share*100, strings.Join(parts, ", "))
	if worst >= 0.05 {
		msg += " Enough to make the figures of the busiest phases noisier than on an idle machine; the ratios, from back-to-back runs, less so than the absolute numbers."
	}
	return msg
}

// machine describes where the run happened.
func machine() string {
	nproc := runtime.NumCPU()
	if out, err := exec.Command("nproc").Output(); err == nil {
		fmt.Sscan(string(out), &nproc)
	}
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	gover := runtime.Version()
	if out, err := exec.Command("go", "version").Output(); err == nil {
		gover = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	return fmt.Sprintf("`nproc` %d (%s%s); %s", nproc, cpu, kernel, gover)
}

func (r *report) markdown() string {
	s := r.settings
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	p("# Benchmarks")
	p("")
	p("Written by the benchmark command; do not edit the figures, run it again:")
	p("")
	p("```")
	p("cd bench && go run . -out ..")
	p("```")
	p("")
	p("- Run: %s, took %s. %s", r.began.UTC().Format("2006-01-02 15:04 MST"), r.took.Round(time.Second), r.otherLoad())
	p("- Machine: %s.", machine())
	p("- Servers: [bench/servers](bench/servers): plain `net/http` and a `net.Listener` echo loop; gozd in its master/worker mode (`-f`, reload by `kill -HUP` to the master); cloudflare/tableflip v1.2.3 as its README shows (upgrade on SIGHUP, then `http.Server.Shutdown` in the old process). All run the same handlers: a %d-byte HTTP body naming the build, and a tcp echo.", len("hello from bench v1\n"))
	p("- Load generator: Go code in [bench/](bench/), on the same machine as the server, over loopback; in the steady state on CPUs of its own (see there), elsewhere sharing them. Steady state: %d closed-loop clients with a hand-written HTTP/1.1 client and raw tcp; reload runs: Go's `net/http` client (which retries an idempotent request only on a reused connection), %s.", s.clients, loadMix())
	p("")

	p("## What it means")
	p("")
	p("%s", r.summary())
	p("")

	r.steadyTable(p)
	r.instrTable(p)
	r.reloadTable(p)
	r.exitTable(p)
	r.stepsTable(p)
	r.memoryTable(p)
	r.memoryByProcess(p)
	r.latencyTable(p)
	r.scaleTables(p)
	r.servicesTable(p)
	r.targetTable(p)
	return b.String()
}

func loadMix() string {
	var parts []string
	for _, k := range loadKinds {
		parts = append(parts, fmt.Sprintf("%d × %s", k.clients, k.name))
	}
	return strings.Join(parts, ", ")
}

func (r *report) steadyTable(p func(string, ...any)) {
	s, st := r.settings, r.steady
	pt := lineupServer("plain-timeouts")
	iv := medianCI(make([]float64, s.pairs))
	p("## Steady state")
	p("")
	p("%d closed-loop clients per server, %v counted after %v of warm-up; the phase took %s.", s.clients, s.pairDur, s.pairWarm, st.took.Round(time.Second))
	p("")
	if st.cpus.pinned() {
		p("- *Pinning*: %s The server's side and the generator's each have CPUs of their own, so neither's work slows the other's; loopback's kernel work is done on the CPU of the process that sends.", st.pinning)
	} else {
		p("- *Pinning*: %s.", st.pinning)
	}
	p("- *Pairs*: every server is compared with a reference measured right before or right after it. gozd with **%s**: plain net/http given gozd's default `ReadHeaderTimeout` (%v) and `IdleTimeout` (%v), which arm a read deadline on every request as gozd's do; tableflip (whose README server sets no timeouts) and %s with plain as it is (the timeouts' own cost); a second process of %s, with the same arguments, with the first (the method's noise floor). Workload by workload, every server keeps its clients, and their connections (keep-alive, tcp echo), through the rounds of each of its starts; in each of %s it runs on every server in the order %s, and in reverse in the next round: each server goes first in one pair and second in the next (A B B A), so a drift of the machine's speed favours neither side. Short measurements, many times over, rather than a few long ones: the two sides of a pair are a fraction of a second apart, closer than the machine's speed changes. %s",
		pt.label, gozd.DefaultReadHeaderTimeout, gozd.DefaultIdleTimeout, pt.label, pt.label, plural(s.pairs, "round"), lineupOrder(), blocksText(st.blocks))
	p("- *Ratios* (÷ ref): the median of the per-pair ratios, with a 95%% confidence interval for that median in brackets: %s. Distribution-free (nothing assumed about how the ratios spread), unlike a bootstrap, which with %d values would treat the sample as the population and come out too narrow. Requests/s: the median over the rounds, with the same interval; p50, p99 and CPU/req: the median over the rounds.", iv.method(), s.pairs)
	p("- *CPU/req*: the CPU time the server's processes used per request (their threads' `/proc/PID/task/TID/schedstat`, in nanoseconds; gozd's master and worker together). *CPU busy*: the share of its CPUs that the server and the load generator (the bench process, `getrusage`) used while counting; the side near 100%% limits the throughput. When that is the generator, requests/s ratios understate a difference between servers and CPU/req tells it.")
	p("")
	p("| workload | server | ÷ ref | requests/s | p50 | p99 | CPU/req | CPU busy: server / generator | req/s ÷ ref | p99 ÷ ref | CPU/req ÷ ref | errors |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, w := range workloads {
		for _, name := range st.servers {
			ls := lineupServer(name)
			smp := st.samples[w.name][name]
			var rs, p50s, p99s, cpus, srvBusy, genBusy []float64
			errs := 0
			for _, x := range smp {
				rs = append(rs, x.rps)
				p50s = append(p50s, float64(x.p50))
				p99s = append(p99s, float64(x.p99))
				cpus = append(cpus, float64(x.cpuPerOp))
				srvBusy = append(srvBusy, st.busy(x.serverCPU, x.dur, st.cpus.server))
				genBusy = append(genBusy, st.busy(x.genCPU, x.dur, st.cpus.generator))
				errs += x.errs
			}
			ref, tr, lr, cr := "—", "", "", ""
			if ls.ref != "" {
				ref = lineupServer(ls.ref).label
				tr, lr, cr = r.vsRef(w, name, rps).format(3), r.vsRef(w, name, p99).format(2), r.vsRef(w, name, cpuPerOp).format(3)
			}
			rsp := medianCI(rs)
			p("| %s | %s | %s | %s [%s–%s] | %s | %s | %s | %.0f%% / %.0f%% | %s | %s | %s | %d |", w.name, ls.label, ref,
				thousands(int64(rsp.med)), thousands(int64(rsp.lo)), thousands(int64(rsp.hi)),
				ms(time.Duration(medianCI(p50s).med)), ms(time.Duration(medianCI(p99s).med)), cpuFormat(time.Duration(medianCI(cpus).med)),
				medianCI(srvBusy).med*100, medianCI(genBusy).med*100, tr, lr, cr, errs)
		}
	}
	p("")
	var same []string
	for _, w := range workloads {
		same = append(same, fmt.Sprintf("%s %s and %s", w.name, r.vsRef(w, "plain-timeouts-again", rps).format(3), r.vsRef(w, "plain-timeouts-again", cpuPerOp).format(3)))
	}
	p("Two equal servers: *%s* is a second process of the same program as *%s*, with the same arguments, measured next to it as gozd is on its other side. Their ratios (requests/s and CPU/req) show how close to 1 the method puts servers that do not differ: %s.", lineupServer("plain-timeouts-again").label, pt.label, strings.Join(same, "; "))
	p("")
	if srv, gen := st.medianBusy(); st.cpus.pinned() && max(srv, gen) < 0.8 {
		p("Neither side used all of its CPUs (median: server %.0f%%, load generator %.0f%%): other processes on the machine took the rest, and the intervals are wider than on an idle machine.", srv*100, gen*100)
		p("")
	}
}

// blocksText says how often the steady state started its servers.
func blocksText(blocks int) string {
	if blocks <= 1 {
		return "Each server is started once for the whole phase: one process's luck (where its memory landed) is part of all its figures."
	}
	return fmt.Sprintf("The servers are started afresh %d times, the rounds split between the starts: one process can run a few percent faster or slower than the next of the same program (where its memory landed), and the ratios then cover that too.", blocks)
}

// medianBusy is how busy the server's and the generator's CPUs were, the
// median over every measurement.
func (st *steadyResult) medianBusy() (server, generator float64) {
	var srv, gen []float64
	for _, byServer := range st.samples {
		for _, smp := range byServer {
			for _, x := range smp {
				srv = append(srv, st.busy(x.serverCPU, x.dur, st.cpus.server))
				gen = append(gen, st.busy(x.genCPU, x.dur, st.cpus.generator))
			}
		}
	}
	return medianCI(srv).med, medianCI(gen).med
}

// lineupOrder names the servers in the order of an even round.
func lineupOrder() string {
	var names []string
	for _, ss := range steadyLineup {
		names = append(names, ss.label)
	}
	return strings.Join(names, " → ")
}

// cpuFormat shows a CPU time per request in microseconds.
func cpuFormat(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}

func (r *report) reloadTable(p func(string, ...any)) {
	s := r.settings
	p("## Reloads under load")
	p("")
	p("Each server runs under the load above while it is reloaded %d times, in %s: in each the server is started, loaded and reloaded its share of the times, gozd first in one round and tableflip first in the next, so that the machine's drift over the run falls on both alike. Before each reload the other build is installed over the binary (written to a temporary file, renamed over it), then SIGHUP. The next reload follows %v after the new build answered and the old process exited. *Signal → new build answers*: from the signal until a separate client, polling GET / on a new connection each time as fast as it can, gets an answer from the new build. *Worker ready (log)*: gozd's master's own figure, `worker ready ... after=`, from starting the worker to its ready message.", s.reloads, plural(len(r.reload("gozd").rounds), "round"), s.spacing)
	p("")
	p("![requests per second and failed requests during the reload runs](bench/reload.svg)")
	p("")
	p("| server | reloads | requests | failed | failed by client | signal → new build answers: median / p99 (min–max) | worker ready (log): median / p99 (min–max) |")
	p("|---|---|---|---|---|---|---|")
	for _, rr := range r.reloads {
		ok, fail := rr.total()
		var kinds []string
		for k, kind := range loadKinds {
			kinds = append(kinds, fmt.Sprintf("%s %s of %s", kind.name, thousands(rr.kindFail[k]), thousands(rr.kindOK[k]+rr.kindFail[k])))
		}
		sv := durSpreadOf(rr.served)
		logged := "—"
		if len(rr.readyLog) > 0 {
			l := durSpreadOf(rr.readyLog)
			logged = fmt.Sprintf("%s / %s (%s)", ms(l.med), ms(l.p99), durRange(l))
		}
		served := fmt.Sprintf("%s / %s (%s)", ms(sv.med), ms(sv.p99), durRange(sv))
		if rr.failedRel > 0 {
			served += fmt.Sprintf("; %d reloads never answered", rr.failedRel)
		}
		p("| %s | %d | %s | %s | %s | %s | %s |", rr.server, rr.reloads, thousands(ok+fail), thousands(fail), strings.Join(kinds, "; "), served, logged)
	}
	p("")
	for _, rr := range r.reloads {
		if len(rr.errs) == 0 {
			continue
		}
		p("Failures of %s, as the clients saw them:", rr.server)
		p("")
		for i, e := range rr.errs {
			if i == 8 {
				p("- … %d more kinds", len(rr.errs)-i)
				break
			}
			p("- %s", strings.ReplaceAll(e, "|", "\\|"))
		}
		p("")
		if rr.server == "tableflip" && onlyUnansweredFresh(rr) {
			p("Every one is a request on a fresh connection that was closed without an answer, which Go's client does not retry: the old process's `http.Server.Shutdown` closes a connection it accepted just before shutting down once it has read the request (the `shuttingDown()` check after `readRequest` in `net/http`'s `conn.serve`). gozd's drain answers such a request, with `Connection: close`.")
			p("")
		}
	}
}

func (r *report) exitTable(p func(string, ...any)) {
	p("## Old process exit after its last connection closes; reloads without load")
	p("")
	p("Idle server, %d reloads each, in %d rounds in which the servers take turns (as under load): a tcp echo connection to the serving process is held open across the reload; once the old process drains (gozd's master logs `worker draining`; the tableflip server prints `draining` when `Exit()` fires) and 100 ms have passed, the bench closes it and polls `/proc/PID` every millisecond until the old process is gone. (gozd's own `old worker exited ... after=` counts from the drain order, not from the last close.) The same reloads, without load, give the *idle* signal → new build figures, and *the new process's CPU until it answers*: its threads' run time (`/proc/PID/task/*/schedstat`) read once the new build has answered the polling client, from its fork (the exec included) through its start and its first answers. *Start floor*: the server's binary run with `-h`, from exec until it exits, median of %d: what any new process of that program costs before it can serve; its starts are spread over the rounds too.", r.settings.exitSamples, max(1, min(exitRounds, r.settings.exitSamples)), floorStarts)
	p("")
	p("| server | samples | last close → exit: median | p99 | min–max | idle: signal → new build answers, median / p99 (min–max) | idle: worker ready (log), median / p99 | idle: the new process's CPU until it answers, median (min–max) | start floor |")
	p("|---|---|---|---|---|---|---|---|---|")
	for _, e := range r.exits {
		d, sv := durSpreadOf(e.times), durSpreadOf(e.served)
		logged := "—"
		if len(e.readyLog) > 0 {
			l := durSpreadOf(e.readyLog)
			logged = fmt.Sprintf("%s / %s", ms(l.med), ms(l.p99))
		}
		cpu := "—"
		if len(e.startCPU) > 0 {
			c := durSpreadOf(e.startCPU)
			cpu = fmt.Sprintf("%s (%s)", ms(c.med), durRange(c))
		}
		p("| %s | %d | %s | %s | %s | %s / %s (%s) | %s | %s | %s |", e.server, d.n, ms(d.med), ms(d.p99), durRange(d), ms(sv.med), ms(sv.p99), durRange(sv), logged, cpu, ms(durSpreadOf(e.floor).med))
	}
	p("")
}

func (r *report) memoryTable(p func(string, ...any)) {
	m := r.memory
	p("## Memory")
	p("")
	p("Peak RSS (`VmHWM` in `/proc/PID/status`) of a server left alone for %v after its start, then given 10 requests and 10 echoes and left alone for %v more (*idle*), then with %s idle keep-alive connections open, each having made one request; gozd's is its master's plus its worker's. Median (min–max) of %s.", idleSettle, idleSettle, thousands(int64(m.conns)), plural(r.settings.reps, "start"))
	p("")
	p("| server | idle | with %s connections | per connection | idle ÷ plain | loaded ÷ plain |", thousands(int64(m.conns)))
	p("|---|---|---|---|---|---|")
	basei, basel := r.memSpread("plain")
	for _, name := range steadyServers {
		idle, loaded := r.memSpread(name)
		perKiB := (loaded.med - idle.med) * 1024 / float64(m.conns)
		p("| %s | %.1f MiB (%.1f–%.1f) | %.1f MiB (%.1f–%.1f) | %.1f KiB | %.2f | %.2f |", name,
			idle.med, idle.min, idle.max, loaded.med, loaded.min, loaded.max, perKiB, idle.med/basei.med, loaded.med/basel.med)
	}
	p("")
}

// memSpread is the idle and loaded peak RSS of a server in MiB.
func (r *report) memSpread(name string) (idle, loaded spread) {
	var is, ls []float64
	for _, x := range r.memory.samples[name] {
		is = append(is, mib(x.idle))
		ls = append(ls, mib(x.loaded))
	}
	return spreadOf(is), spreadOf(ls)
}

// onlyUnansweredFresh reports whether every failure of rr was an HTTP
// request on a new connection that ended without an answer (EOF).
func onlyUnansweredFresh(rr *reloadRun) bool {
	for _, e := range rr.errs {
		_, msg, _ := strings.Cut(e, " × ")
		if !strings.HasPrefix(msg, "http new conn: ") || !strings.HasSuffix(msg, ": EOF") {
			return false
		}
	}
	return true
}

// summary is the two sentences of "What it means", from the figures.
func (r *report) summary() string {
	g, t := r.reload("gozd"), r.reload("tableflip")
	gok, gfail := g.total()
	tok, tfail := t.total()
	sv := durSpreadOf(g.served)
	first := fmt.Sprintf("Across %d reloads under load, with the binary replaced on disk before each, gozd failed %s of %s requests and connections and tableflip failed %s of %s; gozd's new worker answered a median %s (p99 %s) after the signal.",
		g.reloads, thousands(gfail), thousands(gok+gfail), thousands(tfail), thousands(tok+tfail), ms(sv.med), ms(sv.p99))
	var worst string
	worstRatio := 2.0
	for _, w := range workloads {
		if rt := r.vsRef(w, "gozd", rps); rt.med < worstRatio {
			worstRatio, worst = rt.med, w.name
		}
	}
	gi, gl := r.memSpread("gozd")
	pi, pl := r.memSpread("plain")
	rows := memoryRows()
	plain, both := rows[0], rows[3]
	idle := r.memMedian(both, false, rssOf) - r.memMedian(plain, false, rssOf)
	second := fmt.Sprintf("In steady state gozd serves at %.1f%% or more of the throughput of plain net/http with the same timeouts (lowest: %s, median of the back-to-back pairs). At idle its master and worker hold %.1f MiB more than plain (RSS; %.1f MiB more at their peak, during the start), and %.1f MiB more with %s idle connections.",
		worstRatio*100, worst, idle, gi.med-pi.med, gl.med-pl.med, thousands(int64(r.memory.conns)))
	return first + " " + second
}

// targetTable checks the issues' targets and states every gap.
func (r *report) targetTable(p func(string, ...any)) {
	p("## Targets")
	p("")
	p("| target | measured | met |")
	p("|---|---|---|")
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	gaps := r.steadyTargets(p)
	g := r.reload("gozd")
	_, gfail := g.total()
	p("| gozd: 0 failed requests and connections across %d reloads | %d | %s |", g.reloads, gfail, yes(gfail == 0 && g.failedRel == 0))
	if gfail > 0 || g.failedRel > 0 {
		gaps = append(gaps, fmt.Sprintf("gozd failed %d requests and %d reloads under load; see the failures listed above.", gfail, g.failedRel))
	}
	sv := durSpreadOf(g.served)
	p("| gozd: signal → new worker serving < %v (median / p99) | %s / %s | %s |", targetServe, ms(sv.med), ms(sv.p99), yes(sv.p99 < targetServe))
	if sv.p99 >= targetServe {
		gaps = append(gaps, r.serveGap(g, sv))
	}
	idle := durSpreadOf(r.exit("gozd").served)
	p("| gozd: the same without load (median / p99) | %s / %s | %s |", ms(idle.med), ms(idle.p99), yes(idle.p99 < targetServe))
	if idle.p99 >= targetServe {
		gaps = append(gaps, fmt.Sprintf("Without load, signal → new worker serving is still median %s, p99 %s.", ms(idle.med), ms(idle.p99)))
	}
	gaps = append(gaps, r.reloadTargets(p, yes)...)
	ex := durSpreadOf(r.exit("gozd").times)
	p("| gozd: old worker exits ≤ %v after its last connection closes (median / max) | %s / %s | %s |", targetExit, ms(ex.med), ms(ex.max), yes(ex.max <= targetExit))
	if ex.max > targetExit {
		gaps = append(gaps, fmt.Sprintf("An old gozd worker took up to %s to exit after its last connection closed (median %s).", ms(ex.max), ms(ex.med)))
	}
	gaps = append(gaps, r.latencyTargets(p, yes)...)
	gaps = append(gaps, r.memoryTargets(p, yes)...)
	gaps = append(gaps, r.scaleTargets(p, yes)...)
	p("")
	if len(gaps) == 0 {
		p("Every target is met in this run.")
		p("")
		return
	}
	p("Gaps, and their likely causes:")
	p("")
	for _, gp := range gaps {
		p("- %s", gp)
	}
	p("")
}

// steadyTargets writes the steady state's rows of the targets table and
// returns the gaps.
func (r *report) steadyTargets(p func(string, ...any)) (gaps []string) {
	ref := lineupServer(lineupServer("gozd").ref).label
	for _, w := range workloads {
		t, c := r.vsRef(w, "gozd", rps), r.vsRef(w, "gozd", cpuPerOp)
		tj, cj := judge(t, targetThroughput, true), judge(c, targetCPU, false)
		p("| %s: gozd requests/s ≥ %.2f × %s, median [95%% CI] of %d pairs | %s | %s |", w.name, targetThroughput, ref, t.n, t.format(3), tj.says(targetThroughput))
		p("| %s: gozd CPU per request ≤ %.2f × %s | %s | %s |", w.name, targetCPU, ref, c.format(3), cj.says(targetCPU))
		if !tj.met {
			gaps = append(gaps, r.steadyGap(w, "requests/s", rps, t, targetThroughput, true))
		}
		if !cj.met {
			gaps = append(gaps, r.steadyGap(w, "CPU per request", cpuPerOp, c, targetCPU, false))
		}
	}
	return gaps
}

// steadyOnly is the steady state's part of the report, targets included,
// for a run of that phase alone.
func (r *report) steadyOnly() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	r.steadyTable(p)
	p("## Steady-state targets")
	p("")
	p("| target | measured | met |")
	p("|---|---|---|")
	gaps := r.steadyTargets(p)
	p("")
	for _, gp := range gaps {
		p("- %s", gp)
	}
	return b.String()
}

// judgement is a ratio judged against its target, at the precision shown
// so that the table never says 0.980 is below 0.98: met when the median is
// on the right side of the target; shown when the whole interval is too,
// within noise when the interval straddles the target.
type judgement struct {
	met, shown, straddles bool
}

func judge(iv interval, target float64, higherIsBetter bool) judgement {
	good := func(x float64) bool {
		if higherIsBetter {
			return round(x, 3) >= target
		}
		return round(x, 3) <= target
	}
	worse, better := iv.lo, iv.hi
	if !higherIsBetter {
		worse, better = better, worse
	}
	if iv.n == 0 {
		return judgement{}
	}
	return judgement{met: good(iv.med), shown: good(worse), straddles: !good(worse) && good(better)}
}

func (j judgement) says(target float64) string {
	met := "**no**"
	if j.met {
		met = "yes"
	}
	switch {
	case j.shown:
		return fmt.Sprintf("%s, shown: the whole interval is on the right side of %.2f", met, target)
	case j.straddles:
		return fmt.Sprintf("%s, within noise: the interval straddles %.2f", met, target)
	}
	return fmt.Sprintf("%s: the whole interval is on the wrong side of %.2f", met, target)
}

// steadyGap explains why gozd's figure (what: requests/s or CPU per
// request) over its reference's, iv, misses the target on workload w.
func (r *report) steadyGap(w workload, what string, figure func(sample) float64, iv interval, target float64, higherIsBetter bool) string {
	st, name := r.steady, "gozd"
	rs := pairRatios(st.samples[w.name][lineupServer(name).ref], st.samples[w.name][name], figure)
	wrong := 0
	for _, x := range rs {
		if (higherIsBetter && round(x, 3) < target) || (!higherIsBetter && round(x, 3) > target) {
			wrong++
		}
	}
	side := "below"
	if !higherIsBetter {
		side = "above"
	}
	msg := fmt.Sprintf("%s %s: gozd at %s × %s, %s %.2f in %d of %d back-to-back pairs.", w.name, what, iv.format(3), lineupServer(lineupServer(name).ref).label, side, target, wrong, len(rs))
	if judge(iv, target, higherIsBetter).straddles {
		msg += fmt.Sprintf(" The interval straddles %.2f: this run cannot tell the gap from noise.", target)
	}
	if higherIsBetter {
		c := r.vsRef(w, name, cpuPerOp)
		msg += fmt.Sprintf(" gozd's CPU per request was %s × its reference's.", c.format(3))
	}
	var srv, gen []float64
	for _, x := range st.samples[w.name][name] {
		srv = append(srv, st.busy(x.serverCPU, x.dur, st.cpus.server))
		gen = append(gen, st.busy(x.genCPU, x.dur, st.cpus.generator))
	}
	sb, gb := medianCI(srv).med, medianCI(gen).med
	msg += fmt.Sprintf(" CPU busy while counting: server %.0f%%, load generator %.0f%%.", sb*100, gb*100)
	if higherIsBetter && gb > sb && gb >= 0.9 {
		msg += " The generator, not the server, was the limit: requests/s tells the servers apart less than CPU per request does."
	}
	return msg + " " + costOf(w) + r.instrNote(w)
}

// instrNote adds, for the workload the instruction count runs, what it
// found gozd's part of a request to be.
func (r *report) instrNote(w workload) string {
	if w.name != "http keep-alive" || r.instr == nil {
		return ""
	}
	g, ok1 := r.instr.server("gozd")
	p, ok2 := r.instr.server("plain-timeouts")
	if !ok1 || !ok2 {
		return ""
	}
	parts := instrParts(g)
	return fmt.Sprintf(" Counted in instructions (see *Instructions per request*), gozd's own functions execute %.0f of its %.0f per request in user space, and sync.Pool %.0f more than plain's; plain's whole request is %.0f.", parts["gozd"], g.perRequest, parts["sync"]-instrParts(p)["sync"], p.perRequest)
}

// costOf names what gozd adds on the path of a workload.
func costOf(w workload) string {
	switch w.name {
	case "http keep-alive":
		return "Per request gozd's http server wraps the ResponseWriter in a pooled wrapper (so a response can say `Connection: close` once draining; no allocation), wraps the connection (a read mark, so a drain never closes one whose next request is arriving) and runs two ConnState callbacks (busy/idle as atomics, so a drain closes only idle connections); the read deadlines net/http sets several times per request go to the socket through the wrapper's embedded connection. The deadlines themselves (ReadHeaderTimeout, IdleTimeout) are not the cause: the reference arms the same."
	case "http new conn":
		return "Per connection gozd tracks the connection (a map insert and delete under the group's mutex, ConnState callbacks); with a new connection per request that is per request."
	case "tcp echo":
		return "Echo on an open connection runs through gozd's Conn wrapper, one interface call more per Read and Write."
	}
	return "Per connection gozd allocates a Conn wrapper, tracks it under the group's mutex and runs the handler under a recover and a WaitGroup."
}

func (r *report) serveGap(g *reloadRun, sv durSpread) string {
	l := durSpreadOf(g.readyLog)
	t := durSpreadOf(r.reload("tableflip").served)
	idle := durSpreadOf(r.exit("gozd").served)
	floor := durSpreadOf(r.exit("gozd").floor)
	return fmt.Sprintf("Signal → new worker serving under load: median %s, p99 %s, above %v. Most of it is a new process starting while the load generator keeps both cores busy: the master's own figure (worker started → ready) is median %s, p99 %s; the bare binary takes %s from exec to exit with `-h`, without load; without load the whole reload takes median %s, p99 %s; and tableflip, which also starts a new process, takes median %s, p99 %s under the same load.",
		ms(sv.med), ms(sv.p99), targetServe, ms(l.med), ms(l.p99), ms(floor.med), ms(idle.med), ms(idle.p99), ms(t.med), ms(t.p99))
}

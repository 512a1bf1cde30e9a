// Command bench measures gozd against plain net/http and against
// cloudflare/tableflip: steady-state throughput and latency, failed requests
// across reloads under load, reload and exit times, and memory. It builds
// every server it measures, runs them on loopback one after another and
// prints a table; with -out DIR it also writes DIR/BENCHMARKS.md and a chart
// of the reload runs, DIR/bench/reload.svg.
//
//	cd bench && go run . -out ..
//
// The load generator is Go code in this package. See README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// settings are the knobs of one run; the defaults fit a run of a few minutes
// on a 2-core machine.
type settings struct {
	out         string
	reps        int
	dur, warm   time.Duration
	clients     int
	reloads     int
	spacing     time.Duration
	exitSamples int
	idleConns   int
	only        map[string]bool // phases to run; all when empty

	latencyReloads int   // reloads of the latency run (latency.go)
	scaleConns     []int // idle connections of the scale runs (scale.go)
	masterReloads  int   // reloads of the master RSS measurement (memory.go)

	// The steady state's own (steady.go): rounds of pairs, and the length
	// of one measurement and of its warm-up.
	pairs             int
	pairDur, pairWarm time.Duration
	verbose           bool // log every steady-state measurement
	reloadRounds      int  // rounds of the reloads under load (reload.go)
	steadyBlocks      int  // times the steady state starts its servers afresh

	// against is another checkout of gozd whose bench server the steady
	// state measures against this one's (steady.go); "" for none.
	against string
}

// phases of a run, in order.
var phases = []string{"steady", "instructions", "reload", "exit", "memory", "latency", "scale", "services"}

func (s *settings) runs(phase string) bool { return len(s.only) == 0 || s.only[phase] }

func main() {
	var s settings
	flag.StringVar(&s.out, "out", "", "also write `DIR`/BENCHMARKS.md and DIR/bench/reload.svg")
	flag.IntVar(&s.reps, "reps", 5, "repetitions of each memory and services measurement")
	flag.DurationVar(&s.dur, "d", 2*time.Second, "length of one services measurement")
	flag.DurationVar(&s.warm, "warm", 300*time.Millisecond, "load before a services measurement starts counting")
	flag.IntVar(&s.steadyBlocks, "steady-blocks", 4, "times the steady state starts its servers afresh, its rounds split between them")
	flag.BoolVar(&s.verbose, "v", false, "log every steady-state measurement")
	flag.IntVar(&s.pairs, "pairs", 60, "rounds of the steady state: pairs of measurements of each server and the one it is compared with, per workload")
	flag.DurationVar(&s.pairDur, "steady-d", 100*time.Millisecond, "length of one steady-state measurement")
	flag.DurationVar(&s.pairWarm, "steady-warm", 20*time.Millisecond, "load before a steady-state measurement starts counting (the clients' connections stay open between the measurements of a server start)")
	flag.IntVar(&s.clients, "c", 32, "concurrent clients of a steady-state or services measurement")
	flag.IntVar(&s.reloads, "reloads", 50, "reloads of each server under load")
	flag.IntVar(&s.reloadRounds, "reload-rounds", 10, "rounds the reloads under load are split into, the servers taking turns to go first")
	flag.DurationVar(&s.spacing, "spacing", 120*time.Millisecond, "pause after a reload has completed before the next one")
	flag.IntVar(&s.exitSamples, "exits", 20, "reloads timing an old process's exit after its last connection closes")
	flag.IntVar(&s.idleConns, "conns", 10000, "idle keep-alive connections of the memory measurement")
	flag.IntVar(&s.latencyReloads, "latency-reloads", 20, "reloads of the keep-alive POST run through the latency proxy")
	scaleConns := flag.String("scale-conns", "1000,10000", "connections of the scale phase's idle-connection and drain runs, comma-separated")
	flag.IntVar(&s.masterReloads, "master-reloads", 200, "idle reloads between two readings of the master's RSS")
	flag.StringVar(&s.against, "against", "", "also measure, in the steady state and in the instruction count, the gozd server built from the checkout at `DIR` (its bench/servers/gozd) against this one's: an A/B of a change to gozd's per-request path")
	only := flag.String("only", "", "run only these comma-separated `phases`: steady, instructions, reload, exit, memory, latency, scale, services (no report file)")
	flag.Parse()
	for _, f := range strings.Split(*scaleConns, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: bad -scale-conns %q\n", *scaleConns)
			os.Exit(2)
		}
		s.scaleConns = append(s.scaleConns, n)
	}
	if s.against != "" && s.out != "" {
		fmt.Fprintln(os.Stderr, "bench: -against compares two builds of gozd and writes no report: run it without -out")
		os.Exit(2)
	}
	if *only != "" {
		s.only = map[string]bool{}
		for _, p := range strings.Split(*only, ",") {
			if !slices.Contains(phases, p) {
				fmt.Fprintf(os.Stderr, "bench: unknown phase %q in -only: want %s\n", p, strings.Join(phases, ", "))
				os.Exit(2)
			}
			s.only[p] = true
		}
		s.out = ""
	}

	// A Ctrl-C must not leave servers running: stop them by pid first.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "bench: interrupted; stopping the servers")
		cleanup()
		os.Exit(1)
	}()

	err := run(&s)
	cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(s *settings) error {
	began := time.Now()
	r := &report{settings: s, began: began}
	if err := raiseFileLimit(max(s.idleConns, slices.Max(s.scaleConns))*2 + 1000); err != nil {
		return err
	}
	if err := becomeSubreaper(); err != nil {
		return err
	}
	src, err := sourceDir()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "gozd-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// step starts a phase; the CPU other processes take meanwhile is
	// told per phase, as a measure of how noisy its figures are.
	step := func(what string) {
		m := phaseMark{name: what, at: time.Now(), cpu: readCPU()}
		note := ""
		if n := len(r.phases); n > 0 {
			_, share := r.phases[n-1].other(m)
			note = fmt.Sprintf("; other processes took %.0f%% of the machine during %s", share*100, r.phases[n-1].name)
		}
		r.phases = append(r.phases, m)
		fmt.Fprintf(os.Stderr, "bench: %-40s (%s%s)\n", what, time.Since(began).Round(time.Second), note)
	}
	step("building the servers")
	bins, err := buildAll(src, filepath.Join(tmp, "build"))
	if err != nil {
		return err
	}
	if s.against != "" {
		if bins["gozd"][againstVersion], err = buildAgainst(s.against, filepath.Join(tmp, "build")); err != nil {
			return err
		}
	}
	env := &runEnv{s: s, tmp: tmp, bins: bins}

	if s.runs("steady") {
		step("steady state")
		if r.steady, err = runSteady(env); err != nil {
			return err
		}
	}
	if s.runs("instructions") {
		step("instructions per request (cachegrind)")
		if r.instr, err = runInstructions(env); err != nil {
			return err
		}
	}
	if s.runs("reload") {
		runs, err := runReloadRounds(env, step)
		if err != nil {
			return err
		}
		r.reloads = runs
		if g, t := r.reload("gozd"), r.reload("tableflip"); len(g.served) > 0 && len(t.served) > 0 {
			byRound, ratios := roundRatios(g, t)
			logf("  gozd ÷ tableflip, signal → new build answers: median %.2f, p99 %.2f; by round %s, median [95%% CI] %s",
				ratioOf(durSpreadOf(g.served).med, durSpreadOf(t.served).med), ratioOf(durSpreadOf(g.served).p99, durSpreadOf(t.served).p99), byRound, medianCI(ratios).format(2))
		}
	}
	if s.runs("exit") {
		if r.exits, err = runExitRounds(env, []string{"gozd", "tableflip"}, step); err != nil {
			return err
		}
	}
	if s.runs("memory") {
		step("memory")
		if r.memory, err = runMemory(env); err != nil {
			return err
		}
	}
	if s.runs("latency") {
		step("keep-alive POST through a latency proxy")
		if r.latency, err = runLatencyAll(env); err != nil {
			return err
		}
	}
	if s.runs("scale") {
		step("scale: connections, drain, groups, master CPU")
		if r.scale, err = runScale(env); err != nil {
			return err
		}
	}
	if s.runs("services") {
		step("services: gRPC, udp, tcp proxy")
		if r.services, err = runServices(env); err != nil {
			return err
		}
	}
	step("done")
	r.took = time.Since(began)

	if len(s.only) > 0 {
		if r.steady != nil {
			fmt.Println(r.steadyOnly())
		}
		if r.instr != nil {
			var b strings.Builder
			r.instrTable(func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) })
			fmt.Println(b.String())
		}
		return nil // the log above is the result
	}
	md := r.markdown()
	fmt.Println(md)
	if s.out == "" {
		return nil
	}
	chartPath := filepath.Join(s.out, "bench", "reload.svg")
	if err := os.MkdirAll(filepath.Dir(chartPath), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(chartPath, []byte(reloadChart(r.reloads)), 0o644); err != nil {
		return err
	}
	mdPath := filepath.Join(s.out, "BENCHMARKS.md")
	if err := os.WriteFile(mdPath, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s and %s\n", mdPath, chartPath)
	return nil
}

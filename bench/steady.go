package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gozd/gozd"
	"golang.org/x/sys/unix"
)

// workload is one kind of steady-state traffic; op does one request or
// exchange, keeping per-client state (a connection) in st.
type workload struct {
	name string
	http bool // runs against the HTTP address, else the tcp one
	op   func(addr string, st *clientState) error
}

type clientState struct {
	h   *httpConn
	c   net.Conn
	buf []byte
}

func (st *clientState) close() {
	if st.h != nil {
		st.h.c.Close()
		st.h = nil
	}
	if st.c != nil {
		st.c.Close()
		st.c = nil
	}
}

var workloads = []workload{
	{"http keep-alive", true, func(addr string, st *clientState) error {
		if st.h == nil {
			h, err := dialHTTP(addr)
			if err != nil {
				return err
			}
			st.h = h
		}
		_, err := st.h.get(requestKeepAlive)
		if err != nil {
			st.close()
		}
		return err
	}},
	{"http new conn", true, func(addr string, st *clientState) error {
		_, err := getOnce(addr)
		return err
	}},
	{"tcp echo", false, func(addr string, st *clientState) error {
		if st.c == nil {
			c, err := net.DialTimeout("tcp", addr, opTimeout)
			if err != nil {
				return err
			}
			st.c = c
		}
		err := echo(st.c, st.buf)
		if err != nil {
			st.close()
		}
		return err
	}},
	{"tcp connect+echo", false, func(addr string, st *clientState) error {
		return echoOnce(addr, st.buf)
	}},
}

// sample is one steady-state measurement.
type sample struct {
	ops, errs int
	rps       float64
	p50, p99  time.Duration
	cpuPerOp  time.Duration // the server's CPU time (user + system) per request
	serverCPU time.Duration // the server's processes' CPU time while counting
	genCPU    time.Duration // the bench's own CPU time (the load generator) meanwhile
	dur       time.Duration
}

// pool is one server's closed-loop clients of one workload. It lives for
// the rounds of that workload on one start of the server, so that its
// clients keep their connections (keep-alive, tcp echo) between
// measurements: a measurement is then short, and a server's measurements
// can alternate with its reference's many times, each pair close enough in
// time that the machine's speed barely drifts between them.
type pool struct {
	w     workload
	addr  string
	pids  []int
	feeds []chan *window
	done  sync.WaitGroup // the clients, until close
}

// window is one measurement: every client of a pool runs ops from now
// until end, counting those that start at or after start.
type window struct {
	start, end time.Time
	lat        [][]time.Duration // by client
	errs       []int
	wg         sync.WaitGroup
}

// newPool starts clients clients of w against addr, idle until measure.
func newPool(w workload, addr string, pids []int, clients int) *pool {
	p := &pool{w: w, addr: addr, pids: pids}
	for range clients {
		feed := make(chan *window)
		p.feeds = append(p.feeds, feed)
		i := len(p.feeds) - 1
		p.done.Add(1)
		go func() {
			defer p.done.Done()
			st := &clientState{buf: make([]byte, 64)}
			defer st.close()
			l := make([]time.Duration, 0, 1<<14)
			for win := range feed {
				l = l[:0]
				for {
					t0 := time.Now()
					if !t0.Before(win.end) {
						break
					}
					err := w.op(addr, st)
					if t0.Before(win.start) {
						continue
					}
					if err != nil {
						win.errs[i]++
						continue
					}
					l = append(l, time.Since(t0))
				}
				win.lat[i] = slices.Clone(l)
				win.wg.Done()
			}
		}()
	}
	return p
}

// close stops the clients and closes their connections.
func (p *pool) close() {
	for _, f := range p.feeds {
		close(f)
	}
	p.done.Wait()
}

// measure runs the pool's clients: warm, then dur counted, and reads the
// CPU time the server's processes and the bench itself use meanwhile.
func (p *pool) measure(warm, dur time.Duration) sample {
	n := len(p.feeds)
	start := time.Now().Add(warm)
	win := &window{start: start, end: start.Add(dur), lat: make([][]time.Duration, n), errs: make([]int, n)}
	var srv0, srv1, gen0, gen1 time.Duration
	cpuDone := make(chan struct{})
	go func() {
		defer close(cpuDone)
		time.Sleep(time.Until(win.start))
		srv0, gen0 = runTime(p.pids), selfCPU()
		time.Sleep(time.Until(win.end))
		srv1, gen1 = runTime(p.pids), selfCPU()
	}()
	win.wg.Add(n)
	for _, f := range p.feeds {
		f <- win
	}
	win.wg.Wait()
	<-cpuDone
	var all []time.Duration
	s := sample{dur: dur, serverCPU: srv1 - srv0, genCPU: gen1 - gen0}
	for i := range n {
		all = append(all, win.lat[i]...)
		s.errs += win.errs[i]
	}
	slices.Sort(all)
	s.ops = len(all)
	s.rps = float64(s.ops) / dur.Seconds()
	s.p50 = percentile(all, 50)
	s.p99 = percentile(all, 99)
	if s.ops > 0 {
		s.cpuPerOp = s.serverCPU / time.Duration(s.ops)
	}
	return s
}

// runTime is the CPU time the processes pids have used, summed over their
// threads from /proc/PID/task/TID/schedstat, which counts nanoseconds where
// /proc/PID/stat counts 10 ms ticks: over a 1 s measurement a tick is 1%,
// too coarse to tell a 2% difference. (A thread that exits takes its time
// with it; Go's threads live as long as the process.) A kernel without
// schedstat gets /proc/PID/stat.
func runTime(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		proc := "/proc/" + strconv.Itoa(pid)
		if _, err := os.Stat(proc + "/schedstat"); err != nil {
			sum += cpuTime([]int{pid})
			continue
		}
		entries, _ := os.ReadDir(proc + "/task")
		for _, e := range entries {
			b, err := os.ReadFile(proc + "/task/" + e.Name() + "/schedstat")
			if err != nil {
				continue
			}
			f, _, _ := strings.Cut(string(b), " ")
			ns, _ := strconv.ParseInt(f, 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum
}

// selfCPU is the CPU time (user + system) of every thread of the bench.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// steadyServer is a server of the steady state and the one it is compared
// with.
type steadyServer struct {
	name    string // in the log and the report
	bin     string // the program, as built by buildAll
	version string // of bin; "" for the first
	args    []string
	ref     string // the steadyServer whose figures this one's are divided by
	label   string // in the report
}

// steadyLineup is the order of the servers in even rounds, reversed in odd
// ones, so that every server stands next to the one it is compared with
// and goes first in one round, second in the next (A B B A): a drift of the
// machine's speed across a round then favours neither side of a pair.
//
// gozd's HTTP server has ReadHeaderTimeout and IdleTimeout set by default,
// which arm a read deadline per request that a server without them does
// not; it is compared with plain net/http given the same timeouts.
// tableflip's README server sets none and is compared with plain as it is.
// Plain with the timeouts is compared with plain: what the timeouts
// themselves cost. A second process of plain with the timeouts, measured
// next to the first as gozd is on its other side, is the method's noise
// floor: how far it tells apart two servers that do not differ, on every
// workload.
var steadyLineup = []steadyServer{
	{name: "tableflip", bin: "tableflip", ref: "plain", label: "tableflip"},
	{name: "plain", bin: "plain", label: "plain"},
	{name: "plain-timeouts-again", bin: "plain", ref: "plain-timeouts", label: "plain (gozd's timeouts), again", args: plainTimeouts},
	{name: "plain-timeouts", bin: "plain", ref: "plain", label: "plain (gozd's timeouts)", args: plainTimeouts},
	{name: "gozd", bin: "gozd", ref: "plain-timeouts", label: "gozd"},
}

// plainTimeouts gives plain gozd's default timeouts.
var plainTimeouts = []string{"-read-header-timeout", gozd.DefaultReadHeaderTimeout.String(), "-idle-timeout", gozd.DefaultIdleTimeout.String()}

// steadyShown is the order of the servers in the report.
var steadyShown = []string{"plain", "plain-timeouts", "plain-timeouts-again", "gozd", "tableflip"}

// againstServer is the bench's gozd server built from the checkout at dir
// (-against), measured against this checkout's.
func againstServer(dir string) steadyServer {
	return steadyServer{name: "gozd-against", bin: "gozd", version: againstVersion, ref: "gozd", label: "gozd from " + dir}
}

func lineupServer(name string) steadyServer {
	for _, s := range steadyLineup {
		if s.name == name {
			return s
		}
	}
	return steadyServer{name: name, label: name}
}

// steadyServers are the servers the other phases measure.
var steadyServers = []string{"plain", "gozd", "tableflip"}

// steadyResult holds every sample: by workload, then server, one per
// round, so that the i-th samples of a server and of its reference are a
// pair measured back to back.
type steadyResult struct {
	servers []string
	samples map[string]map[string][]sample
	cpus    cpuPlan
	pinning string // how the processes were pinned, for the report
	blocks  int    // times the servers were started afresh
	took    time.Duration
}

// runSteady starts the servers, pins them and the bench to separate CPUs,
// and measures every workload on every server in each of env.s.pairs
// rounds, in lineup order in even rounds and in reverse in odd ones. The
// rounds are split into env.s.steadyBlocks blocks, each with the servers
// started afresh: what differs from one process to the next (where its
// memory landed, which of its threads run where) then varies within the
// run, and the interval of the ratios covers it, instead of one process's
// luck passing for the server's cost.
func runSteady(env *runEnv) (*steadyResult, error) {
	began := time.Now()
	lineup := steadyLineup
	if env.s.against != "" {
		lineup = append(slices.Clip(lineup), againstServer(env.s.against))
	}
	res := &steadyResult{servers: steadyShown, samples: map[string]map[string][]sample{}, cpus: planCPUs()}
	running := map[string]*server{}
	stopAll := func() {
		for name, s := range running {
			s.stop()
			delete(running, name)
		}
	}
	defer stopAll()
	// startAll starts every server of the lineup, on the server CPUs, and
	// returns how many of their threads needed pinning afterwards.
	startAll := func() (fixed int, err error) {
		for _, ss := range lineup {
			start := func() error {
				version := versions[0]
				if ss.version != "" {
					version = ss.version
				}
				s, err := env.start(ss.bin, version, ss.args...)
				if err != nil {
					return err
				}
				running[ss.name] = s
				return nil
			}
			if res.cpus.pinned() {
				err = onPinnedThread(cpuSetOf(res.cpus.server), start)
			} else {
				err = start()
			}
			if err != nil {
				return 0, fmt.Errorf("starting %s: %w", ss.label, err)
			}
		}
		if res.cpus.pinned() {
			return pinServers(res, lineup, running)
		}
		return 0, nil
	}
	for _, w := range workloads {
		res.samples[w.name] = map[string][]sample{}
	}
	blocks := max(1, min(env.s.steadyBlocks, env.s.pairs))
	round, fixed := 0, 0
	for block := range blocks {
		n, err := startAll()
		if err != nil {
			return nil, err
		}
		fixed += n
		if block == 0 && res.cpus.pinned() {
			restore, err := pinGenerator(res)
			if err != nil {
				return nil, err
			}
			defer restore()
		}
		rounds := env.s.pairs / blocks
		if block < env.s.pairs%blocks {
			rounds++
		}
		for _, w := range workloads {
			pools := map[string]*pool{}
			for _, ss := range lineup {
				s := running[ss.name]
				addr := s.tcpAddr
				if w.http {
					addr = s.httpAddr
				}
				pools[ss.name] = newPool(w, addr, s.pids(), env.s.clients)
			}
			for r := range rounds {
				for k := range lineup {
					ss := lineup[k]
					if (round+r)%2 == 1 {
						ss = lineup[len(lineup)-1-k]
					}
					smp := pools[ss.name].measure(env.s.pairWarm, env.s.pairDur)
					res.samples[w.name][ss.name] = append(res.samples[w.name][ss.name], smp)
					if env.s.verbose {
						logf("  %-17s %-14s round %2d: %8.0f req/s  p50 %-9v p99 %-9v CPU/req %-7v server CPU %3.0f%% generator CPU %3.0f%% errors %d",
							w.name, ss.name, round+r+1, smp.rps, smp.p50.Round(time.Microsecond), smp.p99.Round(time.Microsecond), smp.cpuPerOp.Round(10*time.Nanosecond),
							res.busy(smp.serverCPU, smp.dur, res.cpus.server)*100, res.busy(smp.genCPU, smp.dur, res.cpus.generator)*100, smp.errs)
					}
				}
			}
			for _, p := range pools {
				p.close()
			}
		}
		round += rounds
		stopAll()
	}
	res.blocks = blocks
	res.pinning = res.cpus.note
	if res.cpus.pinned() {
		res.pinning = fmt.Sprintf("servers on CPU %s: started from a bench thread whose affinity was set (sched_setaffinity) to it, which every process they start inherits (gozd's master passes it on to its worker); checked thread by thread in /proc/PID/task after each start (%d threads needed pinning afterwards). Load generator on CPU %s: every thread of the bench pinned through /proc/self/task before the first measurement, GOMAXPROCS %d.",
			cpuList(res.cpus.server), fixed, cpuList(res.cpus.generator), len(res.cpus.generator))
	}
	logf("  %s", res.pinning)
	// gozd against its reference, and the other checkout's gozd, if
	// any, against this one's.
	for _, ss := range lineup {
		if ss.bin != "gozd" {
			continue
		}
		for _, w := range workloads {
			logf("  %-17s %s ÷ %s: requests/s %s, CPU/req %s", w.name, ss.label, ss.ref,
				ratio(res.samples[w.name][ss.ref], res.samples[w.name][ss.name], rps).format(3),
				ratio(res.samples[w.name][ss.ref], res.samples[w.name][ss.name], cpuPerOp).format(3))
		}
	}
	res.took = time.Since(began)
	logf("  steady state took %v", res.took.Round(time.Second))
	return res, nil
}

// busy is the share of the CPUs cpus (all of the bench's when not pinned)
// that cpu took over dur.
func (r *steadyResult) busy(cpu, dur time.Duration, cpus []int) float64 {
	n := len(cpus)
	if n == 0 {
		n = max(len(r.cpus.all), 1)
	}
	if dur <= 0 {
		return 0
	}
	return float64(cpu) / float64(dur*time.Duration(n))
}

// pinServers checks that every thread of every server runs on the server
// CPUs, pinning any that does not, and returns how many needed it.
func pinServers(res *steadyResult, lineup []steadyServer, running map[string]*server) (fixed int, err error) {
	serverSet := cpuSetOf(res.cpus.server)
	for _, ss := range lineup {
		for _, pid := range running[ss.name].pids() {
			n, err := pinThreads(pid, serverSet)
			if err != nil {
				return fixed, fmt.Errorf("pinning %s: %w", ss.label, err)
			}
			fixed += n
		}
	}
	return fixed, nil
}

// pinGenerator pins every thread of the bench to the generator CPUs, with
// GOMAXPROCS to match; restore undoes it.
func pinGenerator(res *steadyResult) (restore func(), err error) {
	self := os.Getpid()
	if _, err := pinThreads(self, cpuSetOf(res.cpus.generator)); err != nil {
		return nil, fmt.Errorf("pinning the load generator: %w", err)
	}
	runtime.GOMAXPROCS(len(res.cpus.generator))
	return func() {
		if _, err := pinThreads(self, cpuSetOf(res.cpus.all)); err != nil {
			logf("bench: the load generator stays pinned to CPU %s: %v", cpuList(res.cpus.generator), err)
		}
		runtime.SetDefaultGOMAXPROCS()
	}, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

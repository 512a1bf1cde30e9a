package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procMem is one process's memory, in bytes: from /proc/PID/status the
// peak and current resident set (VmHWM, VmRSS); from
// /proc/PID/smaps_rollup the proportional set (Pss: a page shared by k
// processes counts 1/k), the unique set (Private_Clean + Private_Dirty:
// what exiting would free) and the anonymous part of the resident set (Go
// heap, stacks, runtime; the rest is the binary's pages).
type procMem struct {
	hwm, rss, pss, uss, anon int64
}

func (m procMem) plus(o procMem) procMem {
	return procMem{m.hwm + o.hwm, m.rss + o.rss, m.pss + o.pss, m.uss + o.uss, m.anon + o.anon}
}

// readProcMem reads pid's procMem.
func readProcMem(pid int) (procMem, error) {
	var m procMem
	status := map[string]*int64{"VmHWM": &m.hwm, "VmRSS": &m.rss}
	if err := readKB(fmt.Sprintf("/proc/%d/status", pid), status); err != nil {
		return m, err
	}
	var privClean, privDirty int64
	rollup := map[string]*int64{"Pss": &m.pss, "Private_Clean": &privClean, "Private_Dirty": &privDirty, "Anonymous": &m.anon}
	if err := readKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), rollup); err != nil {
		return m, err
	}
	m.uss = privClean + privDirty
	return m, nil
}

// readKB fills fields from the "Name: N kB" lines of a /proc file, in
// bytes, and fails if one is missing.
func readKB(path string, fields map[string]*int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		p, want := fields[name]
		if !ok || !want {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, name, err)
		}
		*p = kb << 10
		found++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if found < len(fields) {
		return fmt.Errorf("%s: want %d fields, found %d", path, len(fields), found)
	}
	return nil
}

// memSample is one server's memory, idle and with many idle keep-alive
// connections open.
type memSample struct {
	idle, loaded int64 // peak RSS, bytes, summed over the server's processes
	// Each of the server's processes (gozd: master, worker), idle and
	// loaded.
	idleProcs, loadedProcs []procMem
}

type memoryResult struct {
	conns   int
	samples map[string][]memSample
	master  *masterReloads   // gozd's master across many reloads
	binSize map[string]int64 // each server's binary, in bytes
}

// masterReloads is gozd's master's memory before, halfway through and
// after many idle reloads.
type masterReloads struct {
	reloads            int
	took               time.Duration
	before, mid, after procMem
}

// runMemory starts each server fresh, reads the memory of its processes
// after a few requests, opens env.s.idleConns keep-alive connections that
// each made one request, and reads it again; then reloads an idle gozd
// env.s.masterReloads times and reads its master's before and after.
func runMemory(env *runEnv) (*memoryResult, error) {
	res := &memoryResult{conns: env.s.idleConns, samples: map[string][]memSample{}, binSize: map[string]int64{}}
	for _, name := range steadyServers {
		if fi, err := os.Stat(env.bins[name][versions[0]]); err == nil {
			res.binSize[name] = fi.Size()
		}
	}
	for rep := range env.s.reps {
		for _, name := range steadyServers {
			m, err := memoryOnce(env, name)
			if err != nil {
				return nil, err
			}
			res.samples[name] = append(res.samples[name], m)
			logf("  %-9s rep %d: idle peak %.1f MiB, %d connections %.1f MiB; %s", name, rep+1, mib(m.idle), env.s.idleConns, mib(m.loaded), procsLine(m.idleProcs))
		}
	}
	if env.s.masterReloads > 0 {
		var err error
		if res.master, err = runMasterReloads(env, env.s.masterReloads); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func procsLine(ps []procMem) string {
	var parts []string
	for _, m := range ps {
		parts = append(parts, fmt.Sprintf("RSS %.1f PSS %.1f USS %.1f MiB", mib(m.rss), mib(m.pss), mib(m.uss)))
	}
	return strings.Join(parts, " + ")
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// readServerMem reads every process of s: its summed peak RSS and each
// process's procMem.
func readServerMem(s *server) (int64, []procMem, error) {
	var peak int64
	var ps []procMem
	for _, pid := range s.pids() {
		m, err := readProcMem(pid)
		if err != nil {
			return 0, nil, err
		}
		peak += m.hwm
		ps = append(ps, m)
	}
	return peak, ps, nil
}

func memoryOnce(env *runEnv, name string) (memSample, error) {
	var m memSample
	s, err := env.start(name, versions[0])
	if err != nil {
		return m, err
	}
	defer s.stop()
	// The requests come once the start has settled: a server that trims
	// what its start touched (gozd's master and worker, a second after
	// they are ready) is then read with what serving faults back in, not
	// only what it kept of its start.
	time.Sleep(idleSettle)
	h, err := dialHTTP(s.httpAddr)
	if err != nil {
		return m, err
	}
	buf := make([]byte, 64)
	for range 10 {
		if _, err := h.get(requestKeepAlive); err != nil {
			h.c.Close()
			return m, err
		}
		if err := echoOnce(s.tcpAddr, buf); err != nil {
			h.c.Close()
			return m, err
		}
	}
	h.c.Close()
	time.Sleep(idleSettle)
	if m.idle, m.idleProcs, err = readServerMem(s); err != nil {
		return m, err
	}

	conns := make([]net.Conn, env.s.idleConns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	const dialers = 64
	errs := make(chan error, dialers)
	var wg sync.WaitGroup
	for d := range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := d; i < len(conns); i += dialers {
				h, err := dialHTTP(s.httpAddr)
				if err != nil {
					errs <- fmt.Errorf("%s: connection %d: %w", name, i, err)
					return
				}
				conns[i] = h.c
				if _, err := h.get(requestKeepAlive); err != nil {
					errs <- fmt.Errorf("%s: connection %d: %w", name, i, err)
					return
				}
				h.c.SetDeadline(time.Time{})
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return m, err
	}
	time.Sleep(200 * time.Millisecond)
	m.loaded, m.loadedProcs, err = readServerMem(s)
	return m, err
}

// idleSettle is how long a server is left alone after its start and before
// its idle memory is read, every server alike: gozd's master returns what a
// start, a reload or the last requests left behind once it has been quiet
// for a second, its worker what its start touched a second after it is
// ready, and the worker's last report can move its state file's write up to
// a second later (memory.go and report.go in the gozd package).
const idleSettle = 3 * time.Second

// runMasterReloads reloads an idle gozd n times, each once the previous
// one has completed (new worker ready, old worker gone), and reads the
// master's memory before, after n/2 and after n.
func runMasterReloads(env *runEnv, n int) (*masterReloads, error) {
	s, err := env.start("gozd", versions[0])
	if err != nil {
		return nil, err
	}
	defer s.stop()
	if _, err := getOnce(s.httpAddr); err != nil {
		return nil, err
	}
	time.Sleep(idleSettle)
	r := &masterReloads{reloads: n}
	if r.before, err = readProcMem(s.pid()); err != nil {
		return nil, err
	}
	start := time.Now()
	for i := 1; i <= n; i++ {
		// The binary stays: what a reload costs the master does not
		// depend on it, and copying it 200 times would be most of the
		// time.
		old := s.serving
		from := s.log.mark()
		if err := s.signalReload(); err != nil {
			return nil, err
		}
		if _, err := s.reloaded(from, 30*time.Second); err != nil {
			return nil, fmt.Errorf("gozd reload %d of %d: %w\n%s", i, n, err, s.log.tail(20))
		}
		if err := s.waitGone(old, 15*time.Second); err != nil {
			return nil, err
		}
		if i == n/2 {
			time.Sleep(idleSettle)
			if r.mid, err = readProcMem(s.pid()); err != nil {
				return nil, err
			}
		}
	}
	r.took = time.Since(start)
	time.Sleep(idleSettle)
	if r.after, err = readProcMem(s.pid()); err != nil {
		return nil, err
	}
	logf("  gozd master across %d idle reloads (%v): RSS %.2f → %.2f → %.2f MiB, USS %.2f → %.2f → %.2f MiB",
		n, r.took.Round(time.Millisecond), mib(r.before.rss), mib(r.mid.rss), mib(r.after.rss), mib(r.before.uss), mib(r.mid.uss), mib(r.after.uss))
	return r, nil
}

// memoryRow is one row of the by-process table: a label and how to pick its
// procMem out of a sample's processes.
type memoryRow struct {
	label  string
	server string
	pick   func([]procMem) procMem
}

func memoryRows() []memoryRow {
	first := func(ps []procMem) procMem { return ps[0] }
	second := func(ps []procMem) procMem { return ps[1] }
	both := func(ps []procMem) procMem { return ps[0].plus(ps[1]) }
	return []memoryRow{
		{"plain", "plain", first},
		{"gozd master", "gozd", first},
		{"gozd worker", "gozd", second},
		{"gozd master + worker", "gozd", both},
		{"tableflip", "tableflip", first},
	}
}

// memMedian is the median over the samples of one figure of one row, in
// MiB; loaded picks the readings with the idle connections open.
func (r *report) memMedian(row memoryRow, loaded bool, figure func(procMem) int64) float64 {
	var xs []float64
	for _, smp := range r.memory.samples[row.server] {
		ps := smp.idleProcs
		if loaded {
			ps = smp.loadedProcs
		}
		if len(ps) == 0 {
			continue
		}
		xs = append(xs, mib(figure(row.pick(ps))))
	}
	return spreadOf(xs).med
}

func hwmOf(m procMem) int64  { return m.hwm }
func rssOf(m procMem) int64  { return m.rss }
func pssOf(m procMem) int64  { return m.pss }
func ussOf(m procMem) int64  { return m.uss }
func anonOf(m procMem) int64 { return m.anon }

// memoryByProcess is the table of every process's memory, idle and loaded,
// and the master across reloads.
func (r *report) memoryByProcess(p func(string, ...any)) {
	m := r.memory
	if m == nil {
		return
	}
	p("By process, the same starts: *peak* is `VmHWM`, *RSS* `VmRSS` (resident now), both from `/proc/PID/status`; from `/proc/PID/smaps_rollup`, *PSS* counts a page shared by k processes as 1/k (gozd's master and worker share the binary's pages) and *USS* (`Private_Clean` + `Private_Dirty`) is what the process alone holds, what its exit would free. *Anon* is its anonymous memory (Go heap, stacks, runtime), the rest of RSS being the binary's pages. Medians.")
	p("")
	p("| process | idle: peak | RSS | PSS | USS | anon | with %s connections: RSS | PSS | USS |", thousands(int64(m.conns)))
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, row := range memoryRows() {
		f := func(loaded bool, fig func(procMem) int64) string {
			return fmt.Sprintf("%.1f MiB", r.memMedian(row, loaded, fig))
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |", row.label,
			f(false, hwmOf), f(false, rssOf), f(false, pssOf), f(false, ussOf), f(false, anonOf),
			f(true, rssOf), f(true, pssOf), f(true, ussOf))
	}
	p("")
	if mr := m.master; mr != nil {
		p("gozd's master across %d idle reloads, one after another, each once the previous one completed (new worker ready, old worker gone; %v in all):", mr.reloads, mr.took.Round(time.Millisecond))
		p("")
		p("| master | before | after %d reloads | after %d reloads |", mr.reloads/2, mr.reloads)
		p("|---|---:|---:|---:|")
		for _, fig := range []struct {
			name string
			of   func(procMem) int64
		}{{"RSS", rssOf}, {"USS", ussOf}, {"anon", anonOf}, {"peak", hwmOf}} {
			p("| %s | %.2f MiB | %.2f MiB | %.2f MiB |", fig.name, mib(fig.of(mr.before)), mib(fig.of(mr.mid)), mib(fig.of(mr.after)))
		}
		p("")
	}
}

// Memory targets, from the issue.
const (
	targetMasterRSS    = 4 << 20   // master idle RSS
	targetOverPlain    = 5 << 20   // master + worker idle RSS over plain's
	targetMasterGrowth = 512 << 10 // master RSS growth across the reloads
)

// memoryTargets adds the memory rows to the targets table and returns
// their gaps.
func (r *report) memoryTargets(p func(string, ...any), yes func(bool) string) []string {
	m := r.memory
	if m == nil {
		return nil
	}
	var gaps []string
	rows := memoryRows()
	plain, master, worker, both := rows[0], rows[1], rows[2], rows[3]
	mRSS, mAnon := r.memMedian(master, false, rssOf), r.memMedian(master, false, anonOf)
	mPSS := r.memMedian(master, false, pssOf)
	ok := mRSS <= mib(targetMasterRSS)
	p("| gozd: master idle RSS ≤ %.0f MiB | %.1f MiB (PSS %.1f, USS %.1f) | %s |", mib(targetMasterRSS), mRSS, mPSS, r.memMedian(master, false, ussOf), yes(ok))
	if !ok {
		gaps = append(gaps, fmt.Sprintf("The idle master is resident at %.1f MiB: %.1f MiB anonymous (Go heap, goroutine stacks, runtime structures, what its code and every package's init allocated) and %.1f MiB of the binary's pages mapped in (what it ran, and what the kernel maps around each page fault), which it shares with the worker: its PSS is %.1f MiB, and what it alone holds (USS) %.1f MiB.",
			mRSS, mAnon, mRSS-mAnon, mPSS, r.memMedian(master, false, ussOf)))
	}
	bRSS, pRSS := r.memMedian(both, false, rssOf), r.memMedian(plain, false, rssOf)
	bPSS, pPSS := r.memMedian(both, false, pssOf), r.memMedian(plain, false, pssOf)
	ok = bRSS <= pRSS+mib(targetOverPlain)
	p("| gozd: master + worker idle RSS ≤ plain + %.0f MiB | %.1f MiB against %.1f + %.0f (PSS %.1f against %.1f) | %s |", mib(targetOverPlain), bRSS, pRSS, mib(targetOverPlain), bPSS, pPSS, yes(ok))
	if !ok {
		wRSS, wAnon := r.memMedian(worker, false, rssOf), r.memMedian(worker, false, anonOf)
		pAnon := r.memMedian(plain, false, anonOf)
		gaps = append(gaps, fmt.Sprintf("Master + worker idle RSS is %.1f MiB, %.1f MiB over plain's %.1f: the worker alone is %.1f MiB, the master %.1f MiB. Of the worker's %.1f MiB over plain, %.1f MiB is anonymous memory (gozd's state: config, log, control channel, metrics) and %.1f MiB the binary's pages: gozd's server binary is %.1f MB against plain's %.1f (gozd's own code, TLS key loading, encoding/json, regexp through net/http/fcgi, log/slog, the metrics library), and the kernel maps nearly all of a cached binary's pages around the ones a process touches. RSS counts the binary's pages twice, once in each process; by PSS, which shares them, the pair is %.1f MiB against plain's %.1f.",
			bRSS, bRSS-pRSS, pRSS, wRSS, mRSS, wRSS-pRSS, wAnon-pAnon, (wRSS-wAnon)-(pRSS-pAnon), float64(m.binSize["gozd"])/1e6, float64(m.binSize["plain"])/1e6, bPSS, pPSS))
	}
	if mr := m.master; mr != nil {
		growth := mr.after.rss - mr.before.rss
		ok = growth <= targetMasterGrowth
		p("| gozd: master RSS does not grow across %d reloads (≤ %.1f MiB more) | %.2f → %.2f MiB (%+.2f) | %s |", mr.reloads, mib(targetMasterGrowth), mib(mr.before.rss), mib(mr.after.rss), mib(growth), yes(ok))
		if !ok {
			second := mr.after.rss - mr.mid.rss
			msg := fmt.Sprintf("The master's RSS grew by %.2f MiB across %d reloads (%.2f MiB in the second half), of which anonymous memory %+.2f MiB.", mib(growth), mr.reloads, mib(second), mib(mr.after.anon-mr.before.anon))
			if second <= growth/4 {
				msg += " Most of it in the first half, then it holds: not a leak per reload. The master collects and returns its free memory, and drops the binary's pages from its page tables, a second after each reload; what stays is the Go runtime's own (goroutine stacks, span and heap metadata grown by the first reloads' garbage, which the runtime keeps), and the binary's pages the master touched since its last trim (its state file, worker reports), which is why RSS at one reading can sit above the next."
			} else {
				msg += " It kept growing in the second half: something the master keeps per reload (a worker's record, buffers, goroutines) is not freed."
			}
			gaps = append(gaps, msg)
		}
	}
	return gaps
}

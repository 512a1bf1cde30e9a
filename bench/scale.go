package main

// How the cost of a gozd reload, a drain and the master grows: reloads with
// thousands of idle keep-alive connections open (handed to the new
// worker), the drain of thousands of tcp sessions that are not handed over,
// reloads of configs with many groups, and the master's CPU while clients
// open connections at thousands per second. Each figure is measured at two
// or three sizes, and its growth given per unit.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The scale phase's sizes and rates.
var (
	scaleReloads   = 3                  // reloads of each idle-connection and drain size
	scaleGroups    = []int{1, 10, 50}   // http groups of the many-groups reloads
	groupsReloads  = 5                  // reloads of each many-groups size
	connRates      = []int{5000, 10000} // new connections per second of the master CPU runs
	connRateDur    = 3 * time.Second    // length of a master CPU run
	connRateIdle   = 2 * time.Second    // the idle run before them
	connRateSettle = time.Second        // after the start, before the idle run
	connRateDialer = 64                 // goroutines opening the connections
	scaleSpacing   = 100 * time.Millisecond
)

// scaleResult is everything the scale phase measured.
type scaleResult struct {
	idle   []*idleConnsRun
	drains []*drainRun
	groups []*groupsRun
	cpu    []*connRateRun
}

// idleConnsRun is gozd reloaded with conns idle keep-alive connections open,
// each handed to the new worker.
type idleConnsRun struct {
	conns    int
	served   []time.Duration // signal → a new connection answered by the new build
	readyLog []time.Duration // the master's "worker ready after="
	exit     []time.Duration // drain order → old worker exited, every connection handed over
	taken    []time.Duration // the new worker's first → last connection taken over (its log)
	gone     []time.Duration // signal → old worker gone
	rss      []int64         // the new worker's VmRSS once it holds every connection, before any is used
	moved    int             // connections answered by the new build on the same connection after the last reload
	failures int             // connections that failed after any reload

	// A reload right after one, no connection used in between: its old
	// worker holds every connection as it took it over.
	unusedExit, unusedGone time.Duration // drain order → exited; signal → gone
}

// drainRun is gozd's old worker draining conns tcp sessions that are not
// handed over: each handler returns when the drain begins, and gozd closes
// its connection.
type drainRun struct {
	conns   int
	exit    []time.Duration // drain order → old worker exited
	lastEOF []time.Duration // signal → the last client saw its connection closed
	gone    []time.Duration // signal → old worker gone
}

// groupsRun is gozd reloaded with groups http groups configured.
type groupsRun struct {
	groups   int
	served   []time.Duration // signal → the last group answers from the new build
	readyLog []time.Duration
}

// connRateRun is gozd's processes' CPU while clients open, use and close
// connections to its http group at a fixed rate.
type connRateRun struct {
	rate           int // asked for, per second; 0: idle
	conns          int // completed
	failed         int
	dur            time.Duration
	master, worker time.Duration // CPU time, from the threads' schedstat
	masterTicks    time.Duration // the master's utime+stime from /proc/PID/stat
}

func (c *connRateRun) achieved() float64 { return float64(c.conns) / c.dur.Seconds() }

// perThousand is cpu per 1,000 connections of the run.
func (c *connRateRun) perThousand(cpu time.Duration) time.Duration {
	if c.conns == 0 {
		return 0
	}
	return cpu * 1000 / time.Duration(c.conns)
}

func runScale(env *runEnv) (*scaleResult, error) {
	res := &scaleResult{}
	for _, n := range env.s.scaleConns {
		r, err := runIdleConns(env, n)
		if err != nil {
			return nil, err
		}
		res.idle = append(res.idle, r)
	}
	for _, n := range env.s.scaleConns {
		r, err := runDrain(env, n)
		if err != nil {
			return nil, err
		}
		res.drains = append(res.drains, r)
	}
	for _, n := range scaleGroups {
		r, err := runGroups(env, n)
		if err != nil {
			return nil, err
		}
		res.groups = append(res.groups, r)
	}
	var err error
	if res.cpu, err = runConnRates(env); err != nil {
		return nil, err
	}
	return res, nil
}

// reloadGozd installs version over s's binary, signals a reload and waits
// until the master logs the new worker ready; it returns the old worker's
// pid, when the signal went and the master's ready figure.
func reloadGozd(env *runEnv, s *server, version string) (old int, t0 time.Time, from int, err error) {
	if err := install(env.bins["gozd"][version], s.bin); err != nil {
		return 0, t0, 0, err
	}
	old = s.serving
	from = s.log.mark()
	t0 = time.Now()
	if err := s.signalReload(); err != nil {
		return 0, t0, 0, err
	}
	return old, t0, from, nil
}

// waitOldExited waits for the master's "old worker exited" line of pid
// and returns its after= figure: from the drain order to the exit.
func waitOldExited(s *server, from, pid int, timeout time.Duration) (time.Duration, error) {
	line, _, err := s.log.waitFor(from, func(l string) bool {
		return strings.Contains(l, `msg="old worker exited"`) && logField(l, "worker") == strconv.Itoa(pid)
	}, timeout)
	if err != nil {
		return 0, fmt.Errorf("waiting for old worker %d to exit: %w\n%s", pid, err, s.log.tail(20))
	}
	if st := logField(line, "status"); st != "exit status 0" {
		return 0, fmt.Errorf("old worker %d ended with %q: %s", pid, st, line)
	}
	d, err := time.ParseDuration(logField(line, "after"))
	if err != nil {
		return 0, fmt.Errorf("no after= in %q", line)
	}
	return d, nil
}

// runIdleConns opens conns idle keep-alive connections to gozd (one request
// answered on each) and reloads it scaleReloads times: signal → new build
// answers on a new connection, the master's ready figure, drain order → old
// worker exited (every connection handed over by then), signal → old
// worker gone; after each reload, one request on every connection, which
// the new build must answer.
func runIdleConns(env *runEnv, conns int) (*idleConnsRun, error) {
	s, err := env.start("gozd", versions[0])
	if err != nil {
		return nil, err
	}
	defer s.stop()
	hcs := make([]*httpConn, conns)
	defer func() {
		for _, h := range hcs {
			if h != nil {
				h.c.Close()
			}
		}
	}()
	if err := parallel(conns, func(i int) error {
		h, err := dialHTTP(s.httpAddr)
		if err != nil {
			return err
		}
		hcs[i] = h
		_, err = h.get(requestKeepAlive)
		return err
	}); err != nil {
		return nil, fmt.Errorf("opening %d idle connections: %w", conns, err)
	}
	r := &idleConnsRun{conns: conns}
	answer := func(want string) {
		var moved, failed atomic.Int64
		parallel(conns, func(i int) error {
			if v, err := hcs[i].get(requestKeepAlive); err == nil && v == want {
				moved.Add(1)
			} else {
				failed.Add(1)
			}
			return nil
		})
		r.moved = int(moved.Load())
		r.failures += int(failed.Load())
	}
	for i := 1; i <= scaleReloads; i++ {
		want := versions[i%2]
		if err := r.reload(env, s, want, fmt.Sprintf("reload %d", i)); err != nil {
			return nil, err
		}
		answer(want)
		time.Sleep(scaleSpacing)
	}
	// Twice more, without a request in between: the second reload's old
	// worker holds every connection as it took it over, unused.
	for i := 1; i <= 2; i++ {
		before := len(r.exit)
		if err := r.reload(env, s, versions[i%2], fmt.Sprintf("back-to-back reload %d", i)); err != nil {
			return nil, err
		}
		if i == 2 {
			r.unusedExit = r.exit[before]
			r.unusedGone = r.gone[before]
		}
		r.served, r.readyLog, r.exit, r.taken, r.gone, r.rss = r.served[:before], r.readyLog[:before], r.exit[:before], r.taken[:before], r.gone[:before], r.rss[:min(before, len(r.rss))]
		time.Sleep(scaleSpacing)
	}
	answer(versions[0])
	logf("  %s idle keep-alive connections: signal → new build %v; old worker exit after drain order %v; signal → old gone %v; new worker's RSS %s; back to back, connections unused: old worker exit after drain order %s, signal → old gone %s; %d answered by the new build, %d failed",
		thousands(int64(conns)), durSpreadOf(r.served), durSpreadOf(r.exit), durSpreadOf(r.gone), mibRange(r.rss), ms(r.unusedExit), ms(r.unusedGone), r.moved, r.failures)
	return r, nil
}

// reload reloads gozd into version with r's connections open and records
// what it took; what names the reload in errors.
func (r *idleConnsRun) reload(env *runEnv, s *server, version, what string) error {
	old, t0, from, err := reloadGozd(env, s, version)
	if err != nil {
		return err
	}
	seen, err := waitVersion(s.httpAddr, version, 30*time.Second)
	if err != nil {
		return fmt.Errorf("gozd with %d idle connections, %s: %w", r.conns, what, err)
	}
	r.served = append(r.served, seen.Sub(t0))
	after, err := s.reloaded(from, 30*time.Second)
	if err != nil {
		return err
	}
	r.readyLog = append(r.readyLog, after)
	exit, err := waitOldExited(s, from, old, 60*time.Second)
	if err != nil {
		return err
	}
	r.exit = append(r.exit, exit)
	// Before the new worker's line, which comes once it has taken
	// every connection, often long after the old one is gone.
	if err := s.waitGone(old, 15*time.Second); err != nil {
		return err
	}
	r.gone = append(r.gone, time.Since(t0))
	line, _, err := s.log.waitFor(from, func(l string) bool {
		return strings.Contains(l, `msg="took connections over from the previous worker"`)
	}, 30*time.Second)
	if err != nil {
		return fmt.Errorf("gozd with %d idle connections, %s: the new worker never said it took them over: %w", r.conns, what, err)
	}
	if d, err := time.ParseDuration(logField(line, "in")); err == nil {
		r.taken = append(r.taken, d)
	}
	if pid, err := strconv.Atoi(logField(line, "pid")); err == nil {
		if m, err := readProcMem(pid); err == nil {
			r.rss = append(r.rss, m.rss)
		}
	}
	return nil
}

// holdGroup is the tcp group whose handler holds its connection until the
// worker drains (servers/gozd).
const holdGroup = "[hold]\nmode tcp\nlisten 127.0.0.1:0\n"

// runDrain opens conns connections to gozd's hold group, each taken by the
// worker (its handler wrote a byte), reloads, and times the old worker's
// drain: drain order → exit (the master's figure), signal → the last
// client saw its connection closed, signal → the old worker gone. Repeated
// scaleReloads times with fresh connections.
func runDrain(env *runEnv, conns int) (*drainRun, error) {
	s, err := env.startGroups("gozd", versions[0], gozdGroups+"\n"+holdGroup)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	addr := s.addrs["hold"]
	if addr == "" {
		return nil, fmt.Errorf("gozd: no hold group in the start output:\n%s", s.log.tail(5))
	}
	r := &drainRun{conns: conns}
	for i := 1; i <= scaleReloads; i++ {
		if err := drainOnce(env, s, addr, conns, versions[i%2], r); err != nil {
			return nil, err
		}
		time.Sleep(scaleSpacing)
	}
	logf("  drain of %s tcp sessions: old worker exit after drain order %v; signal → last connection closed %v; signal → old gone %v",
		thousands(int64(conns)), durSpreadOf(r.exit), durSpreadOf(r.lastEOF), durSpreadOf(r.gone))
	return r, nil
}

func drainOnce(env *runEnv, s *server, addr string, conns int, want string, r *drainRun) error {
	cs := make([]net.Conn, conns)
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := parallel(conns, func(i int) error {
		c, err := net.DialTimeout("tcp", addr, opTimeout)
		if err != nil {
			return err
		}
		cs[i] = c
		c.SetReadDeadline(time.Now().Add(opTimeout))
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil {
			return fmt.Errorf("hold connection %d: %w", i, err)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("opening %d hold connections: %w", conns, err)
	}
	// One reader per connection sees it closed; the last one to see it
	// tells when the drain ended for the clients.
	var closed sync.WaitGroup
	var last atomic.Int64 // UnixNano
	for _, c := range cs {
		closed.Add(1)
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		go func() {
			defer closed.Done()
			b := make([]byte, 1)
			c.Read(b) // EOF once gozd closes it
			now := time.Now().UnixNano()
			for {
				l := last.Load()
				if now <= l || last.CompareAndSwap(l, now) {
					return
				}
			}
		}()
	}
	old, t0, from, err := reloadGozd(env, s, want)
	if err != nil {
		return err
	}
	if _, err := s.reloaded(from, 30*time.Second); err != nil {
		return err
	}
	exit, err := waitOldExited(s, from, old, 60*time.Second)
	if err != nil {
		return err
	}
	if err := s.waitGone(old, 15*time.Second); err != nil {
		return err
	}
	gone := time.Since(t0)
	closed.Wait()
	r.exit = append(r.exit, exit)
	r.gone = append(r.gone, gone)
	r.lastEOF = append(r.lastEOF, time.Unix(0, last.Load()).Sub(t0))
	return nil
}

// webGroups is the group sections of a gozd config with n http groups, web
// and web1 to web(n-1), and the echo group.
func webGroups(n int) string {
	var b strings.Builder
	b.WriteString(gozdGroups)
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "\n[web%d]\nmode http\nlisten 127.0.0.1:0\n", i)
	}
	return b.String()
}

// lastWebGroup is the name of the last of n http groups.
func lastWebGroup(n int) string {
	if n == 1 {
		return "web"
	}
	return fmt.Sprintf("web%d", n-1)
}

// runGroups reloads an idle gozd with groups http groups groupsReloads
// times: signal → the last group answers from the new build.
func runGroups(env *runEnv, groups int) (*groupsRun, error) {
	s, err := env.startGroups("gozd", versions[0], webGroups(groups))
	if err != nil {
		return nil, err
	}
	defer s.stop()
	addr := s.addrs[lastWebGroup(groups)]
	if addr == "" {
		return nil, fmt.Errorf("gozd: no group %s in the start output", lastWebGroup(groups))
	}
	r := &groupsRun{groups: groups}
	for i := 1; i <= groupsReloads; i++ {
		want := versions[i%2]
		old, t0, from, err := reloadGozd(env, s, want)
		if err != nil {
			return nil, err
		}
		seen, err := waitVersion(addr, want, 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("gozd with %d groups, reload %d: %w", groups, i, err)
		}
		r.served = append(r.served, seen.Sub(t0))
		after, err := s.reloaded(from, 30*time.Second)
		if err != nil {
			return nil, err
		}
		r.readyLog = append(r.readyLog, after)
		if err := s.waitGone(old, 15*time.Second); err != nil {
			return nil, err
		}
		time.Sleep(scaleSpacing)
	}
	logf("  %d http groups: signal → last group answers from the new build %v; worker ready (log) %v", groups, durSpreadOf(r.served), durSpreadOf(r.readyLog))
	return r, nil
}

// runConnRates measures gozd's master and worker CPU while idle, then while
// clients open connections to the http group at each of connRates per
// second (GET with Connection: close, then close), for connRateDur each.
func runConnRates(env *runEnv) ([]*connRateRun, error) {
	s, err := env.start("gozd", versions[0])
	if err != nil {
		return nil, err
	}
	defer s.stop()
	// What a master does once at start (state file, the worker's first
	// reports, the garbage of reading the config) is not the idle cost.
	time.Sleep(connRateSettle)
	var runs []*connRateRun
	for _, rate := range append([]int{0}, connRates...) {
		r, err := connRateOnce(s, rate)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
		logf("  %s new connections/s asked, %.0f/s done (%d failed): master CPU %v (%v per 1,000 connections; utime+stime %v), worker CPU %v (%v per 1,000)",
			thousands(int64(rate)), r.achieved(), r.failed, r.master, r.perThousand(r.master), r.masterTicks, r.worker, r.perThousand(r.worker))
	}
	return runs, nil
}

func connRateOnce(s *server, rate int) (*connRateRun, error) {
	master, worker := s.pid(), s.serving
	r := &connRateRun{rate: rate}
	m0, err1 := threadsCPU(master)
	w0, err2 := threadsCPU(worker)
	t0 := cpuTime([]int{master})
	start := time.Now()
	if rate == 0 {
		time.Sleep(connRateIdle)
	} else {
		// Open loop: connection k of the run is due at start + k/rate,
		// taken by whichever dialer is free; one that falls behind does
		// not catch up in a burst beyond what the dialers can do.
		total := int64(float64(rate) * connRateDur.Seconds())
		var next, done, failed atomic.Int64
		var wg sync.WaitGroup
		for range connRateDialer {
			wg.Go(func() {
				for {
					k := next.Add(1) - 1
					if k >= total {
						return
					}
					if wait := time.Until(start.Add(time.Duration(k) * time.Second / time.Duration(rate))); wait > 0 {
						time.Sleep(wait)
					}
					if _, err := getOnce(s.httpAddr); err != nil {
						failed.Add(1)
					} else {
						done.Add(1)
					}
				}
			})
		}
		wg.Wait()
		r.conns, r.failed = int(done.Load()), int(failed.Load())
	}
	r.dur = time.Since(start)
	m1, err3 := threadsCPU(master)
	w1, err4 := threadsCPU(worker)
	if err := firstErr(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	r.master, r.worker = m1-m0, w1-w0
	r.masterTicks = cpuTime([]int{master}) - t0
	if s.serving != worker || gone(worker) {
		return nil, fmt.Errorf("gozd's worker %d changed during the run", worker)
	}
	return r, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// threadsCPU is the CPU time every thread of pid has run, in nanoseconds,
// from /proc/PID/task/*/schedstat: finer than the 10 ms ticks of
// /proc/PID/stat, which a master that is nearly idle never reaches. A
// thread that exited between two readings takes its time with it; Go keeps
// its threads.
func threadsCPU(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, t := range tasks {
		f, err := os.Open(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // exited meanwhile
		}
		line, _ := bufio.NewReader(f).ReadString(' ')
		f.Close()
		n, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/%s/schedstat: %w", dir, t.Name(), err)
		}
		sum += time.Duration(n)
	}
	return sum, nil
}

// parallel runs f(0..n-1) on 32 goroutines and returns the first error.
func parallel(n int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	wg.Wait()
	return first
}

// perUnit is how much d grows per unit from n1 to n2 units, from the
// medians of two sizes.
func perUnit(d1, d2 []time.Duration, n1, n2 int) time.Duration {
	if n2 == n1 {
		return 0
	}
	return (durSpreadOf(d2).med - durSpreadOf(d1).med) / time.Duration(n2-n1)
}

// signedDur formats a growth, which noise can make negative, finer than
// ms does below a millisecond.
func signedDur(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "−", -d
	}
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%s%d ns", sign, d.Nanoseconds())
	case d < 100*time.Microsecond:
		return fmt.Sprintf("%s%.1f µs", sign, float64(d)/float64(time.Microsecond))
	}
	return sign + ms(d)
}

// cpuDur formats a CPU time, in seconds from a second on.
func cpuDur(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return ms(d)
}

// mibRange is the median (min–max) of byte counts, in MiB.
func mibRange(bs []int64) string {
	if len(bs) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB (%.1f–%.1f)", mib(int64(medianInt(bs))), mib(slices.Min(bs)), mib(slices.Max(bs)))
}

// medianInt is the median of bs.
func medianInt(bs []int64) float64 {
	fs := make([]float64, len(bs))
	for i, b := range bs {
		fs[i] = float64(b)
	}
	slices.Sort(fs)
	return median(fs)
}

func medRange(ds []time.Duration) string {
	s := durSpreadOf(ds)
	return fmt.Sprintf("%s (%s)", ms(s.med), durRange(s))
}

func (r *report) scaleTables(p func(string, ...any)) {
	sc := r.scale
	if sc == nil {
		return
	}
	p("## Scale")
	p("")
	p("How gozd's reload, drain and master costs grow, each measured at two or three sizes on an otherwise idle server; median (min–max) of the reloads of each size. *Growth* is the difference of the medians between the smallest and the largest size, per unit.")
	p("")
	if n := len(sc.idle); n > 0 {
		p("### Reload with idle keep-alive connections open")
		p("")
		p("gozd with idle keep-alive connections open (one request answered on each), reloaded %s: *signal → new build answers* on a new connection; the master's *worker ready* figure; *drain order → old worker exited*, every connection handed to the new worker by then (the master's `old worker exited ... after=`); *new worker: first → last taken*, from the first connection the new worker received to the last it holds, watched until its next request (its `took connections over ... in=`); *signal → old worker gone*; *new worker's RSS*, `VmRSS` once it holds every connection, none of them used yet. After each reload one request on every connection, which the new build must answer on the same connection.", plural(scaleReloads, "time"))
		p("")
		p("| idle connections | signal → new build answers | worker ready (log) | drain order → old worker exited | new worker: first → last taken | signal → old worker gone | new worker's RSS | answered by the new build after the last reload | failed |")
		p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, x := range sc.idle {
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %d |", thousands(int64(x.conns)), medRange(x.served), medRange(x.readyLog), medRange(x.exit), medRange(x.taken), medRange(x.gone), mibRange(x.rss), thousands(int64(x.moved)), x.failures)
		}
		a, b := sc.idle[0], sc.idle[n-1]
		if n > 1 {
			rssGrowth := "—"
			if len(a.rss) > 0 && len(b.rss) > 0 && b.conns > a.conns {
				rssGrowth = fmt.Sprintf("%+.2f KiB", (medianInt(b.rss)-medianInt(a.rss))/float64(b.conns-a.conns)/1024)
			}
			p("| growth per connection | %s | %s | %s | %s | %s | %s | | |", signedDur(perUnit(a.served, b.served, a.conns, b.conns)), signedDur(perUnit(a.readyLog, b.readyLog, a.conns, b.conns)),
				signedDur(perUnit(a.exit, b.exit, a.conns, b.conns)), signedDur(perUnit(a.taken, b.taken, a.conns, b.conns)), signedDur(perUnit(a.gone, b.gone, a.conns, b.conns)), rssGrowth)
		}
		p("")
		p("Then two reloads back to back, no connection used in between: the second one's old worker holds every connection as it took it over, waiting for its first byte (parked, not yet served by net/http), and passes it on as it came. One such reload per size; afterwards every connection is answered by the new build.")
		p("")
		p("| idle connections | drain order → old worker exited | signal → old worker gone |")
		p("|---:|---:|---:|")
		for _, x := range sc.idle {
			p("| %s | %s | %s |", thousands(int64(x.conns)), ms(x.unusedExit), ms(x.unusedGone))
		}
		p("")
	}
	if n := len(sc.drains); n > 0 {
		p("### Drain of tcp sessions that are not handed over")
		p("")
		p("gozd with a tcp group whose handler writes a byte and then holds its connection until the worker drains (`<-conn.Context().Done()`, then returns, and gozd closes the connection): the handoff does not apply. Connections opened to the worker, each having read its byte, then a reload, %s with fresh connections: *drain order → old worker exited* (the master's figure), *signal → last connection closed* (the last client to read EOF), *signal → old worker gone*.", plural(scaleReloads, "time"))
		p("")
		p("| connections | drain order → old worker exited | signal → last connection closed | signal → old worker gone |")
		p("|---:|---:|---:|---:|")
		for _, x := range sc.drains {
			p("| %s | %s | %s | %s |", thousands(int64(x.conns)), medRange(x.exit), medRange(x.lastEOF), medRange(x.gone))
		}
		a, b := sc.drains[0], sc.drains[n-1]
		if n > 1 {
			p("| growth per connection | %s | %s | %s |", signedDur(perUnit(a.exit, b.exit, a.conns, b.conns)), signedDur(perUnit(a.lastEOF, b.lastEOF, a.conns, b.conns)), signedDur(perUnit(a.gone, b.gone, a.conns, b.conns)))
		}
		p("")
	}
	if n := len(sc.groups); n > 0 {
		p("### Reload with many groups")
		p("")
		p("gozd with N http groups (each its own listener and `http.Server`) and the tcp echo group, idle, reloaded %s: *signal → the last group answers from the new build*, polled on a new connection each time, and the master's *worker ready* figure.", plural(groupsReloads, "time"))
		p("")
		p("| http groups | signal → last group answers from the new build | worker ready (log) |")
		p("|---:|---:|---:|")
		for _, x := range sc.groups {
			p("| %d | %s | %s |", x.groups, medRange(x.served), medRange(x.readyLog))
		}
		a, b := sc.groups[0], sc.groups[n-1]
		if n > 1 {
			p("| growth per group | %s | %s |", signedDur(perUnit(a.served, b.served, a.groups, b.groups)), signedDur(perUnit(a.readyLog, b.readyLog, a.groups, b.groups)))
		}
		p("")
	}
	if len(sc.cpu) > 0 {
		p("### The master's CPU while connections arrive")
		p("")
		p("Clients open connections to gozd's http group at a fixed rate (open loop: connection k is due at k/rate, %d dialers), send one GET with `Connection: close`, read the answer and close, for %v; first %v idle. CPU is the sum of the run time of every thread of the process (`/proc/PID/task/*/schedstat`), which sees what the 10 ms ticks of `utime`+`stime` in `/proc/PID/stat` do not; those ticks are shown too.", connRateDialer, connRateDur, connRateIdle)
		p("")
		p("| new connections/s: asked | done | connections | failed | master CPU | master per second | master per 1,000 connections | master utime+stime | worker CPU | worker per 1,000 connections |")
		p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, x := range sc.cpu {
			per := func(d time.Duration) string {
				if x.conns == 0 {
					return "—"
				}
				return ms(x.perThousand(d))
			}
			asked := thousands(int64(x.rate))
			if x.rate == 0 {
				asked = "idle"
			}
			p("| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s |", asked, thousands(int64(x.achieved())), thousands(int64(x.conns)), x.failed, cpuDur(x.master), cpuDur(x.perSecond()), per(x.master), cpuDur(x.masterTicks), cpuDur(x.worker), per(x.worker))
		}
		if m, ok := masterMarginal(sc.cpu); ok {
			a, b := sc.cpu[len(sc.cpu)-2], sc.cpu[len(sc.cpu)-1]
			p("| growth per 1,000 more connections/s, %s/s → %s/s | | | | | %s | | | | |", thousands(int64(a.achieved())), thousands(int64(b.achieved())), signedDur(m))
		}
		p("")
	}
}

// Targets of the scale runs, from the issues.
const (
	targetHandoff10k     = 100 * time.Millisecond // drain order → old worker exited, 10,000 idle connections handed over
	targetMasterCPURate  = 10000                  // new connections per second
	targetMasterCPUShare = 0.01                   // of the worker's CPU meanwhile
)

// scaleTargets adds the scale rows to the targets table and returns their
// gaps.
func (r *report) scaleTargets(p func(string, ...any), yes func(bool) string) []string {
	sc := r.scale
	if sc == nil {
		return nil
	}
	var gaps []string
	for _, h := range sc.idle {
		if h.conns != 10000 {
			continue
		}
		ex := durSpreadOf(h.exit)
		ok := ex.max < targetHandoff10k && h.failures == 0
		p("| gozd: 10,000 idle connections handed over, old worker gone < %s after the drain order (max) | %s, %d failed | %s |", ms(targetHandoff10k), ms(ex.max), h.failures, yes(ok))
		if !ok {
			gap := fmt.Sprintf("Handing 10,000 idle connections over took up to %s (median %s): each costs the old worker a wake-up of the connection's goroutine (net/http gives a connection up only from it) and net/http's teardown of it, then a descriptor sent over the unix socket (its close is not waited for); the new worker parks it, one epoll_ctl, until its next request. On 2 cores the new worker's part competes with the old worker's for the CPU until the old one exits.", ms(ex.max), ms(ex.med))
			if h.unusedExit > 0 {
				gap += fmt.Sprintf(" A worker that has not served the connections since it took them over (two reloads back to back) has no goroutine to wake: its drain took %s.", ms(h.unusedExit))
			}
			gaps = append(gaps, gap)
		}
	}
	var busy *connRateRun
	for _, c := range sc.cpu {
		if c.rate == targetMasterCPURate {
			busy = c
		}
	}
	if busy != nil && busy.conns > 0 {
		share := float64(busy.master) / float64(busy.worker)
		ok := share <= targetMasterCPUShare
		p("| gozd: master CPU ≈ 0 at %s new connections/s (≤ %.0f%% of the worker's) | %s per 1,000 connections, %.2f%% of the worker's %s (at %s/s) | %s |",
			thousands(targetMasterCPURate), targetMasterCPUShare*100, ms(busy.perThousand(busy.master)), share*100, ms(busy.perThousand(busy.worker)), thousands(int64(busy.achieved())), yes(ok))
		if !ok {
			gaps = append(gaps, fmt.Sprintf("gozd's master used %s of CPU while %s connections arrived, %.2f%% of the worker's. %s", ms(busy.master), thousands(int64(busy.conns)), share*100, masterCPUCause(sc.cpu)))
		}
		if busy.achieved() < 0.9*targetMasterCPURate {
			gaps = append(gaps, fmt.Sprintf("The clients reached %s of the %s new connections per second asked for: the load generator and gozd's worker share 2 cores. The master's figure is per connection, so it still holds.", thousands(int64(busy.achieved())), thousands(targetMasterCPURate)))
		}
	}
	return gaps
}

// perSecond is the master's CPU per second of the run.
func (c *connRateRun) perSecond() time.Duration {
	if c.dur <= 0 {
		return 0
	}
	return time.Duration(float64(c.master) / c.dur.Seconds())
}

// masterMarginal is how much the master's CPU per second grows per 1,000
// more connections per second, from the two highest rates measured: what
// connections themselves cost the master, apart from its work per second.
func masterMarginal(runs []*connRateRun) (time.Duration, bool) {
	if len(runs) < 3 {
		return 0, false
	}
	a, b := runs[len(runs)-2], runs[len(runs)-1]
	if b.achieved() <= a.achieved() {
		return 0, false
	}
	return time.Duration(float64(b.perSecond()-a.perSecond()) / (b.achieved() - a.achieved()) * 1000), true
}

// masterCPUCause says whether the master's CPU under load grows with the
// connections or is work per second.
func masterCPUCause(runs []*connRateRun) string {
	msg := fmt.Sprintf("Idle the master uses %s per second; under load", ms(runs[0].perSecond()))
	for _, r := range runs[1:] {
		msg += fmt.Sprintf(", %s per second at %s/s", ms(r.perSecond()), thousands(int64(r.achieved())))
	}
	if m, ok := masterMarginal(runs); ok {
		msg += fmt.Sprintf(" (%s per 1,000 more connections per second)", signedDur(m))
	}
	return msg + ". The master is not on a connection's path: under load it wakes for the worker's connection reports (every 250 ms while the counts change: a JSON decode and the metrics), rewrites its state file at most once a second, and the Go runtime's sysmon thread polls while it is awake. That is work per second, whatever the rate; per 1,000 connections it shrinks as the rate grows."
}

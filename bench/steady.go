package main

import (
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"time"
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
}

// measure runs clients closed-loop clients of w against addr: warm, then
// dur counted, and reads the CPU time the server's processes (pids) use
// meanwhile.
func measure(w workload, addr string, pids []int, clients int, warm, dur time.Duration) sample {
	start := time.Now().Add(warm)
	end := start.Add(dur)
	var cpu0, cpu1 time.Duration
	cpuDone := make(chan struct{})
	go func() {
		defer close(cpuDone)
		time.Sleep(time.Until(start))
		cpu0 = cpuTime(pids)
		time.Sleep(time.Until(end))
		cpu1 = cpuTime(pids)
	}()
	lat := make([][]time.Duration, clients)
	errs := make([]int, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &clientState{buf: make([]byte, 64)}
			defer st.close()
			l := make([]time.Duration, 0, 1<<14)
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				err := w.op(addr, st)
				if t0.Before(start) {
					continue
				}
				if err != nil {
					errs[i]++
					continue
				}
				l = append(l, time.Since(t0))
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	<-cpuDone
	var all []time.Duration
	s := sample{}
	for i := range clients {
		all = append(all, lat[i]...)
		s.errs += errs[i]
	}
	slices.Sort(all)
	s.ops = len(all)
	s.rps = float64(s.ops) / dur.Seconds()
	s.p50 = percentile(all, 50)
	s.p99 = percentile(all, 99)
	if s.ops > 0 {
		s.cpuPerOp = (cpu1 - cpu0) / time.Duration(s.ops)
	}
	return s
}

// steadyResult holds every sample: by workload, then server, one per
// repetition.
type steadyResult struct {
	servers []string
	samples map[string]map[string][]sample
}

var steadyServers = []string{"plain", "gozd", "tableflip"}

// runSteady starts the three servers and measures each workload on each in
// turn, repetition after repetition, rotating the order of the servers so
// that none always runs first.
func runSteady(env *runEnv) (*steadyResult, error) {
	res := &steadyResult{servers: steadyServers, samples: map[string]map[string][]sample{}}
	running := map[string]*server{}
	defer func() {
		for _, s := range running {
			s.stop()
		}
	}()
	for _, name := range steadyServers {
		s, err := env.start(name, versions[0])
		if err != nil {
			return nil, err
		}
		running[name] = s
	}
	for _, w := range workloads {
		res.samples[w.name] = map[string][]sample{}
	}
	for rep := range env.s.reps {
		for _, w := range workloads {
			for k := range steadyServers {
				name := steadyServers[(k+rep)%len(steadyServers)]
				s := running[name]
				addr := s.tcpAddr
				if w.http {
					addr = s.httpAddr
				}
				smp := measure(w, addr, s.pids(), env.s.clients, env.s.warm, env.s.dur)
				res.samples[w.name][name] = append(res.samples[w.name][name], smp)
				logf("  %-17s %-9s rep %d: %8.0f req/s  p50 %-9v p99 %-9v CPU/req %-7v errors %d", w.name, name, rep+1, smp.rps, smp.p50.Round(time.Microsecond), smp.p99.Round(time.Microsecond), smp.cpuPerOp.Round(100*time.Nanosecond), smp.errs)
			}
		}
	}
	return res, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

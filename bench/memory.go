package main

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// memSample is one server's peak RSS, idle and with many idle keep-alive
// connections open.
type memSample struct {
	idle, loaded int64 // bytes, summed over the server's processes
}

type memoryResult struct {
	conns   int
	samples map[string][]memSample
}

// runMemory starts each server fresh, reads the peak RSS (VmHWM) of its
// processes after a few requests, opens env.s.idleConns keep-alive
// connections that each made one request, and reads it again.
func runMemory(env *runEnv) (*memoryResult, error) {
	res := &memoryResult{conns: env.s.idleConns, samples: map[string][]memSample{}}
	for rep := range env.s.reps {
		for _, name := range steadyServers {
			m, err := memoryOnce(env, name)
			if err != nil {
				return nil, err
			}
			res.samples[name] = append(res.samples[name], m)
			logf("  %-9s rep %d: idle %.1f MiB, %d connections %.1f MiB", name, rep+1, mib(m.idle), env.s.idleConns, mib(m.loaded))
		}
	}
	return res, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func peakRSS(s *server) (int64, error) {
	var sum int64
	for _, pid := range s.pids() {
		n, err := vmHWM(pid)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

func memoryOnce(env *runEnv, name string) (memSample, error) {
	var m memSample
	s, err := env.start(name, versions[0])
	if err != nil {
		return m, err
	}
	defer s.stop()
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
	time.Sleep(100 * time.Millisecond)
	if m.idle, err = peakRSS(s); err != nil {
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
	m.loaded, err = peakRSS(s)
	return m, err
}

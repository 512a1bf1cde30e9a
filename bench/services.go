package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// The services phase: gRPC unary calls, udp request/response and a tcp proxy
// copying 1 MiB with io.Copy, through gozd (server values, a udp group, a
// tcp handler) against the same code on plain sockets; then gRPC calls and
// udp datagrams lost across reloads of gozd.
const (
	proxySize      = 1 << 20
	serviceReloads = 20
	udpTimeout     = 2 * time.Second  // a datagram unanswered this long is lost
	envUpstream    = "BENCH_UPSTREAM" // services.EnvUpstream, the address the proxies copy from
)

// servicesRun is what the services phase measured: operations per second
// per repetition, and the reload run's counts.
type servicesRun struct {
	rates   map[string]map[string][]float64 // workload → server → ops/s per repetition
	reloads int
	grpcOK, grpcFailed,
	udpOK, udpLost int64
}

var serviceWorkloads = []string{"gRPC unary", "udp request/response", "tcp proxy, 1 MiB io.Copy"}

// servicesServer is a running gozd-services or plain-services with its
// addresses.
type servicesServer struct {
	*server
	grpc, udp, proxy string
}

// startServices starts gozd-services (kind "gozd") or plain-services, its
// proxy copying from upstream.
func (e *runEnv) startServices(kind, upstream string) (*servicesServer, error) {
	e.seq++
	bin := "plain-services"
	if kind == "gozd" {
		bin = "gozd-services"
	}
	s := &server{name: kind, dir: filepath.Join(e.tmp, fmt.Sprintf("run%d-%s", e.seq, bin)), log: newLogBook(), exited: make(chan struct{})}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	s.bin = filepath.Join(s.dir, bin)
	if err := install(e.bins[bin][versions[0]], s.bin); err != nil {
		return nil, err
	}
	var args []string
	if kind == "gozd" {
		conf := filepath.Join(s.dir, "bench.conf")
		s.pidFile = filepath.Join(s.dir, "gozd.pid")
		text := fmt.Sprintf("pidfile %s\ndrain_timeout 10s\n[grpc]\nmode tcp\nlisten 127.0.0.1:0\n[udp]\nmode udp\nlisten 127.0.0.1:0\n[proxy]\nmode tcp\nlisten 127.0.0.1:0\n", s.pidFile)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, err
		}
		args = []string{"-f", "-c", conf}
	}
	if err := s.launch(args, []string{envUpstream + "=" + upstream}); err != nil {
		return nil, err
	}
	ss := &servicesServer{server: s}
	if err := ss.waitServing(); err != nil {
		s.stop()
		return nil, fmt.Errorf("starting %s: %w; its output:\n%s", bin, err, s.log.tail(20))
	}
	return ss, nil
}

func (ss *servicesServer) waitServing() error {
	const timeout = 30 * time.Second
	if ss.name != "gozd" {
		line, _, err := ss.log.waitFor(0, func(l string) bool { return strings.HasPrefix(l, "ready pid ") }, timeout)
		if err != nil {
			return err
		}
		var pid int
		if _, err := fmt.Sscanf(line, "ready pid %d grpc %s udp %s proxy %s", &pid, &ss.grpc, &ss.udp, &ss.proxy); err != nil {
			return fmt.Errorf("parsing %q: %w", line, err)
		}
		ss.setServing(pid)
		return nil
	}
	// gozd: started, pid N; grpc tcp on ADDR; udp udp on ADDR; proxy tcp on ADDR
	line, _, err := ss.log.waitFor(0, func(l string) bool { return strings.HasPrefix(l, "gozd: started") }, timeout)
	if err != nil {
		return err
	}
	for _, part := range strings.Split(line, "; ")[1:] {
		f := strings.Fields(part)
		if len(f) != 4 {
			continue
		}
		switch f[0] {
		case "grpc":
			ss.grpc = f[3]
		case "udp":
			ss.udp = f[3]
		case "proxy":
			ss.proxy = f[3]
		}
	}
	pid, _, err := ss.nextReady(0, timeout)
	if err != nil {
		return err
	}
	ss.setServing(pid)
	return nil
}

// serveUpstream answers every connection with proxySize bytes, then closes
// it: what the proxies copy.
func serveUpstream() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	payload := bytes.Repeat([]byte("gozd"), proxySize/4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.Write(payload)
				c.Close()
			}()
		}
	}()
	return ln, nil
}

// serviceClient does one operation of a workload; each client goroutine has
// its own.
type serviceClient func() error

// newServiceClient makes a client of workload against ss.
func newServiceClient(workload string, ss *servicesServer, cc *grpc.ClientConn) (serviceClient, func(), error) {
	switch workload {
	case "gRPC unary":
		client := testgrpc.NewTestServiceClient(cc)
		req := &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("ping")}}
		return func() error {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			_, err := client.UnaryCall(ctx, req)
			return err
		}, func() {}, nil
	case "udp request/response":
		c, err := net.Dial("udp", ss.udp)
		if err != nil {
			return nil, nil, err
		}
		q, buf := []byte("a question of 32 bytes, padded.."), make([]byte, 64)
		return func() error {
			if _, err := c.Write(q); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(udpTimeout))
			n, err := c.Read(buf)
			if err == nil && n != len(q) {
				err = fmt.Errorf("answer of %d bytes", n)
			}
			return err
		}, func() { c.Close() }, nil
	default: // proxy
		return func() error {
			c, err := net.DialTimeout("tcp", ss.proxy, opTimeout)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(opTimeout))
			n, err := io.Copy(io.Discard, c)
			if err == nil && n != proxySize {
				err = fmt.Errorf("copied %d bytes", n)
			}
			return err
		}, func() {}, nil
	}
}

// driveServices runs clients clients of workload against ss until stop,
// counting successes and failures.
func driveServices(workload string, ss *servicesServer, clients int, stop <-chan struct{}, ok, failed *atomic.Int64) (wait func(), err error) {
	cc, err := grpc.NewClient(ss.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for range clients {
		do, done, err := newServiceClient(workload, ss, cc)
		if err != nil {
			cc.Close()
			return nil, err
		}
		wg.Go(func() {
			defer done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := do(); err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	return func() { wg.Wait(); cc.Close() }, nil
}

// runServices measures the services phase.
func runServices(env *runEnv) (*servicesRun, error) {
	up, err := serveUpstream()
	if err != nil {
		return nil, err
	}
	defer up.Close()
	s := env.s
	run := &servicesRun{rates: map[string]map[string][]float64{}, reloads: serviceReloads}
	kinds := []string{"plain", "gozd"}
	for rep := range s.reps {
		for i := range kinds {
			kind := kinds[(i+rep)%len(kinds)] // rotate who goes first
			ss, err := env.startServices(kind, up.Addr().String())
			if err != nil {
				return nil, err
			}
			for _, w := range serviceWorkloads {
				var ok, failed atomic.Int64
				stop := make(chan struct{})
				wait, err := driveServices(w, ss, s.clients, stop, &ok, &failed)
				if err != nil {
					ss.stop()
					return nil, err
				}
				time.Sleep(s.warm)
				before, t0 := ok.Load(), time.Now()
				time.Sleep(s.dur)
				rate := float64(ok.Load()-before) / time.Since(t0).Seconds()
				close(stop)
				wait()
				if run.rates[w] == nil {
					run.rates[w] = map[string][]float64{}
				}
				run.rates[w][kind] = append(run.rates[w][kind], rate)
				fmt.Fprintf(os.Stderr, "bench:   %-26s %-6s %8.0f ops/s\n", w, kind, rate)
				if failed.Load() > 0 {
					fmt.Fprintf(os.Stderr, "bench: %s on %s: %d failed in a steady run\n", w, kind, failed.Load())
				}
			}
			ss.stop()
		}
	}

	// Reloads under gRPC and udp load.
	ss, err := env.startServices("gozd", up.Addr().String())
	if err != nil {
		return nil, err
	}
	defer ss.stop()
	stop := make(chan struct{})
	var grpcOK, grpcFailed, udpOK, udpLost atomic.Int64
	waitGRPC, err := driveServices("gRPC unary", ss, 8, stop, &grpcOK, &grpcFailed)
	if err != nil {
		return nil, err
	}
	waitUDP, err := driveServices("udp request/response", ss, 8, stop, &udpOK, &udpLost)
	if err != nil {
		close(stop)
		waitGRPC()
		return nil, err
	}
	for range serviceReloads {
		time.Sleep(s.spacing)
		mark := ss.log.mark()
		if err := syscall.Kill(ss.pid(), syscall.SIGHUP); err != nil {
			return nil, err
		}
		if _, _, err := ss.log.waitFor(mark, func(l string) bool { return strings.Contains(l, `msg="old worker exited"`) }, 60*time.Second); err != nil {
			return nil, fmt.Errorf("services reload: %w", err)
		}
	}
	time.Sleep(s.spacing)
	close(stop)
	waitGRPC()
	waitUDP()
	run.grpcOK, run.grpcFailed, run.udpOK, run.udpLost = grpcOK.Load(), grpcFailed.Load(), udpOK.Load(), udpLost.Load()
	fmt.Fprintf(os.Stderr, "bench:   %d reloads: gRPC %d ok, %d failed; udp %d answered, %d lost\n", serviceReloads, run.grpcOK, run.grpcFailed, run.udpOK, run.udpLost)
	return run, nil
}

// servicesTable writes the services phase into the report.
func (r *report) servicesTable(p func(string, ...any)) {
	sr := r.services
	if sr == nil {
		return
	}
	p("## Services: gRPC, udp, tcp proxy")
	p("")
	p("gozd serving a `*grpc.Server` on a tcp group, a udp group and a tcp handler that `io.Copy`s a fresh upstream connection (%d MiB) into the `gozd.Conn`, against the same code on plain sockets ([bench/servers](bench/servers): `gozd-services`, `plain-services`). %d closed-loop clients, %s per measurement, %d repetitions; median (min–max).", proxySize>>20, r.settings.clients, r.settings.dur, r.settings.reps)
	p("")
	p("| workload | plain ops/s | gozd ops/s | gozd / plain |")
	p("| --- | --: | --: | --: |")
	for _, w := range serviceWorkloads {
		plain, gz := sr.rates[w]["plain"], sr.rates[w]["gozd"]
		var ratios []float64
		for i := range min(len(plain), len(gz)) {
			if plain[i] > 0 {
				ratios = append(ratios, gz[i]/plain[i])
			}
		}
		ps, gs, rs := spreadOf(plain), spreadOf(gz), spreadOf(ratios)
		p("| %s | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) | %.2f (%.2f–%.2f) |", w, ps.med, ps.min, ps.max, gs.med, gs.min, gs.max, rs.med, rs.min, rs.max)
	}
	p("")
	p("Across %d reloads of gozd (SIGHUP to the master, each waited for until the old worker exited) under 8 gRPC and 8 udp clients: %d gRPC calls answered, **%d failed**; %d datagrams answered, **%d lost** (unanswered within %s).", sr.reloads, sr.grpcOK, sr.grpcFailed, sr.udpOK, sr.udpLost, udpTimeout)
	p("")
}

package integration

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// TestGRPCReloads serves examples/grpc (a *grpc.Server on a tcp group) and
// drives it with grpc-go's client: unary calls from several goroutines and
// short server-streaming calls, across ten reloads by SIGHUP to the master.
// Not one call may fail. The first reload also shows the health service
// turning NOT_SERVING as the old worker drains.
func TestGRPCReloads(t *testing.T) {
	bin := buildProgram(t, "./examples/grpc")
	conf := writeConf(t, "drain_timeout 20s\n[grpc]\nmode tcp\nlisten 127.0.0.1:0\n")
	m := startMaster(t, bin, conf)
	addr := m.addr("grpc")

	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)

	// The health service says SERVING, and NOT_SERVING once the worker
	// it runs in begins to drain.
	hcc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer hcc.Close()
	wctx, cancelWatch := context.WithTimeout(context.Background(), 2*wait)
	defer cancelWatch()
	watch, err := healthpb.NewHealthClient(hcc).Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := watch.Recv(); err != nil || st.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: %v, %v; want SERVING", st.GetStatus(), err)
	}

	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		calls    atomic.Int64
		streams  atomic.Int64
		failures atomic.Int64
		pidsMu   sync.Mutex
		pids     = map[string]bool{}
	)
	fail := func(what string, err error) {
		failures.Add(1)
		t.Errorf("%s: %v", what, err)
	}
	// repeat runs call in a goroutine of its own until stop.
	repeat := func(call func()) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				call()
			}
		})
	}
	for range 6 {
		repeat(func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("ping")}})
			cancel()
			if err != nil {
				fail("unary call", err)
				return
			}
			if string(resp.GetPayload().GetBody()) != "ping" {
				fail("unary call", errors.New("wrong payload "+string(resp.GetPayload().GetBody())))
			}
			calls.Add(1)
			pidsMu.Lock()
			pids[resp.GetServerId()] = true
			pidsMu.Unlock()
		})
	}
	// Clients that connect for every call: some connect as a drain
	// begins, on connections the old worker has just accepted.
	for range 3 {
		repeat(func() {
			one, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				fail("new client", err)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			_, err = testgrpc.NewTestServiceClient(one).UnaryCall(ctx, &testgrpc.SimpleRequest{})
			cancel()
			one.Close()
			if err != nil {
				fail("unary call on a new connection", err)
				return
			}
			calls.Add(1)
		})
	}
	params := make([]*testgrpc.ResponseParameters, 5)
	for i := range params {
		params[i] = &testgrpc.ResponseParameters{Size: 100, IntervalUs: 20000}
	}
	repeat(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		st, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: params})
		n := 0
		for err == nil {
			var resp *testgrpc.StreamingOutputCallResponse
			if resp, err = st.Recv(); err == nil && len(resp.GetPayload().GetBody()) == 100 {
				n++
			}
		}
		cancel()
		if !errors.Is(err, io.EOF) || n != len(params) {
			fail("streaming call", err)
			return
		}
		streams.Add(1)
	})

	waitCalls := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for calls.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d calls answered", calls.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitCalls(50)
	for i := 1; i <= 10; i++ {
		if i == 1 {
			// The watch holds a stream that GracefulStop waits for:
			// it sees NOT_SERVING, then the client ends it.
			if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			st, err := watch.Recv()
			if err != nil || st.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Fatalf("health watch during the drain: %v, %v; want NOT_SERVING", st.GetStatus(), err)
			}
			cancelWatch()
			m.waitFor("old worker exited", 1)
		} else {
			m.reload(i)
		}
		waitCalls(calls.Load() + 50)
	}
	close(stop)
	wg.Wait()
	pidsMu.Lock()
	workers := len(pids)
	pidsMu.Unlock()
	t.Logf("%d unary calls, %d streams, %d failed, answered by %d workers", calls.Load(), streams.Load(), failures.Load(), workers)
	if failures.Load() != 0 {
		t.Fatalf("%d calls failed across 10 reloads", failures.Load())
	}
	if workers < 11 {
		t.Errorf("calls were answered by %d workers; want all 11", workers)
	}
	if streams.Load() == 0 {
		t.Error("no streaming call completed")
	}
}

// Package services holds what the servers of the bench's "services" phase
// run, gozd's and the plain one alike: a gRPC unary service, a udp echo and a
// tcp proxy that copies an upstream connection to the client with io.Copy.
package services

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// EnvUpstream names the address the proxy copies from.
const EnvUpstream = "BENCH_UPSTREAM"

type service struct {
	testgrpc.UnimplementedTestServiceServer
}

// UnaryCall echoes the payload; ServerId names the process.
func (service) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Payload: req.GetPayload(), ServerId: strconv.Itoa(os.Getpid())}, nil
}

// GRPC returns the gRPC server every services server runs.
func GRPC() *grpc.Server {
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, service{})
	return s
}

// UDPEcho answers every datagram with itself until a read fails (gozd's
// drain, or a closed socket).
func UDPEcho(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if n > 0 {
			pc.WriteTo(buf[:n], addr)
		}
		if err != nil {
			return
		}
	}
}

// Proxy copies a fresh connection to the upstream into c, then closes c:
// io.Copy between two sockets, which Linux splices.
func Proxy(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", os.Getenv(EnvUpstream))
	if err != nil {
		return
	}
	defer up.Close()
	io.Copy(c, up)
}

// Command grpc serves gRPC on a gozd tcp group: the *grpc.Server is the
// group's server value, so a reload drains it with GracefulStop, and the
// standard health service turns NOT_SERVING the moment the drain begins, so
// that a load balancer that asks it stops sending new calls here.
//
// The service is grpc-go's interop TestService, standing in for a program's
// own generated service: UnaryCall answers with this worker's pid as
// ServerId, StreamingOutputCall streams one message per ResponseParameters.
//
//	[grpc]
//	mode   tcp
//	listen 127.0.0.1:50051
package main

import (
	"context"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/gozd/gozd"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

type service struct {
	testgrpc.UnimplementedTestServiceServer
}

func (service) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Payload: req.GetPayload(), ServerId: strconv.Itoa(os.Getpid())}, nil
}

func (service) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	for _, p := range req.GetResponseParameters() {
		select {
		case <-time.After(time.Duration(p.GetIntervalUs()) * time.Microsecond):
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
		body := make([]byte, p.GetSize())
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	done := gozd.Daemonize()

	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	testgrpc.RegisterTestServiceServer(srv, service{})
	go func() {
		// Health first: it says NOT_SERVING while gozd lets the calls
		// under way finish (GracefulStop).
		<-gozd.Worker().Draining()
		hs.Shutdown()
	}()

	if err := gozd.RegistHandler("grpc", "grpc", srv); err != nil {
		log.Fatal(err)
	}
	<-done
}

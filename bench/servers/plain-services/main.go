// Command plain-services is the floor of the services phase: the same gRPC
// server, udp echo and tcp proxy on plain sockets.
package main

import (
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/gozd/gozd/bench/servers/internal/services"
)

var version = "dev"

func main() {
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go services.GRPC().Serve(gl)
	go services.UDPEcho(pc)
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			go services.Proxy(c)
		}
	}()
	fmt.Printf("ready pid %d grpc %s udp %s proxy %s (%s)\n", os.Getpid(), gl.Addr(), pc.LocalAddr(), pl.Addr(), version)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

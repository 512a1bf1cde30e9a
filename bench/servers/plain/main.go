// Command plain is the floor of the benchmark: net/http and a net.Listener
// echo loop with the bench's trivial handlers and nothing else. The
// timeouts are zero (none, as http.Serve has) unless given: the bench also
// runs it with gozd's defaults, so that gozd is compared with a server that
// arms the same read deadlines.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/gozd/gozd/bench/servers/internal/trivial"
)

var version = "dev"

func main() {
	httpAddr := flag.String("http", "127.0.0.1:0", "HTTP `address`")
	tcpAddr := flag.String("tcp", "127.0.0.1:0", "tcp echo `address`")
	readHeaderTimeout := flag.Duration("read-header-timeout", 0, "the HTTP server's ReadHeaderTimeout (0: none)")
	idleTimeout := flag.Duration("idle-timeout", 0, "the HTTP server's IdleTimeout (0: none)")
	flag.Parse()

	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	tl, err := net.Listen("tcp", *tcpAddr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: trivial.Handler(version), ReadHeaderTimeout: *readHeaderTimeout, IdleTimeout: *idleTimeout}
	go srv.Serve(hl)
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go trivial.Echo(c)
		}
	}()
	fmt.Printf("ready pid %d http %s tcp %s\n", os.Getpid(), hl.Addr(), tl.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

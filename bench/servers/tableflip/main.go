// Command tableflip is the benchmark's cloudflare/tableflip server, written
// the way tableflip's README and its http example show: upgrade on SIGHUP,
// Listen, Ready, wait for Exit, then http.Server.Shutdown. The tcp echo
// listener is closed at Exit and the process waits for its connections.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/gozd/gozd/bench/servers/internal/trivial"
)

var version = "dev"

func main() {
	httpAddr := flag.String("http", "127.0.0.1:0", "HTTP `address`; an upgrade finds its listener by this string, so give each a port")
	tcpAddr := flag.String("tcp", "127.0.0.1:0", "tcp echo `address`")
	pidFile := flag.String("pid-file", "", "`path` of the pid file")
	flag.Parse()
	log.SetPrefix(fmt.Sprintf("tableflip %s pid %d: ", version, os.Getpid()))
	log.SetFlags(0)

	upg, err := tableflip.New(tableflip.Options{PIDFile: *pidFile})
	if err != nil {
		log.Fatal(err)
	}
	defer upg.Stop()

	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		for s := range sig {
			if s != syscall.SIGHUP {
				upg.Stop()
				return
			}
			if err := upg.Upgrade(); err != nil {
				log.Println("upgrade failed:", err)
			}
		}
	}()

	hl, err := upg.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	tl, err := upg.Listen("tcp", *tcpAddr)
	if err != nil {
		log.Fatal(err)
	}
	server := &http.Server{Handler: trivial.Handler(version)}
	go server.Serve(hl)
	var echoes sync.WaitGroup
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			echoes.Add(1)
			go func() {
				defer echoes.Done()
				trivial.Echo(c)
			}()
		}
	}()

	if err := upg.Ready(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ready pid %d http %s tcp %s\n", os.Getpid(), hl.Addr(), tl.Addr())
	<-upg.Exit()
	log.Println("draining")

	// As tableflip's example: bound the exit, then drain with Shutdown.
	time.AfterFunc(30*time.Second, func() {
		log.Println("graceful shutdown timed out")
		os.Exit(1)
	})
	tl.Close()
	server.Shutdown(context.Background())
	<-accepting
	echoes.Wait()
}

// Command mixed is one gozd daemon serving all four listener modes, as
// declared in examples/mixed.conf:
//
//	group   mode   listen                      handler
//	echo    tcp    127.0.0.1:9000              demo.Echo, a line echo
//	web     http   127.0.0.1:8080              demo.Handler
//	secure  https  127.0.0.1:8443              demo.Handler over TLS
//	app     fcgi   /tmp/gozd-mixed-fcgi.sock   demo.Handler over FastCGI
//
// Build it, run it in the foreground, and from another terminal restart it
// into a new build without dropping a connection:
//
//	go build -o /tmp/gozd-mixed ./examples/mixed
//	/tmp/gozd-mixed -f -c examples/mixed.conf
//	curl http://127.0.0.1:8080/
//	go build -ldflags "-X main.version=v2" -o /tmp/gozd-mixed ./examples/mixed
//	/tmp/gozd-mixed -s reload -c examples/mixed.conf
//	curl http://127.0.0.1:8080/
package main

import (
	"fmt"
	"os"

	"github.com/gozd/gozd"
	"github.com/gozd/gozd/examples/internal/demo"
)

// version tells builds apart in the responses; set it when building with
// -ldflags "-X main.version=v2".
var version = "dev"

func main() {
	// Daemonize reads -c -s -f -v from the command line and does the daemon
	// work: it starts the master process that owns the listeners, which runs
	// this same program again as a worker. It returns only in a worker; the
	// master and a "-s" command exit inside it. Flags of your own must be
	// defined before this call.
	daemonChan := gozd.Daemonize()

	// The config file says where to listen; the program only says what to
	// serve there, with one handler per group. A tcp group takes a
	// func(gozd.Conn); http, https and fcgi groups take an http.Handler.
	// The worker serves once every group has a handler, and only then does a
	// reload retire the previous worker.
	web := demo.Handler(version)
	handlers := []struct {
		group, name string
		handler     any
	}{
		{"echo", "demo.Echo", demo.Echo},
		{"web", "demo.Handler", web},
		{"secure", "demo.Handler", web},
		{"app", "demo.Handler", web},
	}
	for _, h := range handlers {
		// A group missing from the config, or a handler of the wrong kind, is
		// an error. Exit non-zero so gozd sees this worker failed: a start
		// reports it, a reload keeps the previous worker serving.
		if err := gozd.RegistHandler(h.group, h.name, h.handler); err != nil {
			fmt.Fprintf(os.Stderr, "mixed %s: %v\n", version, err)
			os.Exit(1)
		}
	}

	// Handlers run on their own goroutines; main just waits. The channel
	// fires once this worker has drained, after -s quit, SIGTERM or a reload
	// that handed its listeners to a newer worker. Clean up here if needed.
	<-daemonChan
}

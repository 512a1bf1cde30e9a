// Command fcgi serves the demo handler over FastCGI on a unix socket.
// The listener is declared in examples/fcgi.conf, group app.
//
//	go run ./examples/fcgi -f -c examples/fcgi.conf
//	point a web server at unix:/tmp/gozd-example-fcgi.sock
package main

import (
	"fmt"
	"os"

	"github.com/gozd/gozd"
	"github.com/gozd/gozd/examples/internal/demo"
)

// version is set at build time: go build -ldflags "-X main.version=v2".
var version = "dev"

func main() {
	daemonChan := gozd.Daemonize()
	if err := gozd.RegistHandler("app", "demo.Handler", demo.Handler(version)); err != nil {
		fmt.Fprintf(os.Stderr, "fcgi %s: %v\n", version, err)
		os.Exit(1)
	}
	<-daemonChan
}

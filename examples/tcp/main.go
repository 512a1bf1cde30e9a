// Command tcp is a gozd line echo server: every line a client sends comes
// back to it. The listener is declared in examples/tcp.conf, group echo.
//
//	go run ./examples/tcp -f -c examples/tcp.conf
//	nc 127.0.0.1 9100
package main

import (
	"fmt"
	"os"

	"github.com/gozd/gozd"
	"github.com/gozd/gozd/examples/internal/demo"
)

// version is set at build time: go build -ldflags "-X main.version=v2".
// The echo does not show it; it is here so all examples build alike.
var version = "dev"

func main() {
	daemonChan := gozd.Daemonize()
	if err := gozd.RegistHandler("echo", "demo.Echo", demo.Echo); err != nil {
		fmt.Fprintf(os.Stderr, "tcp %s: %v\n", version, err)
		os.Exit(1)
	}
	<-daemonChan
}

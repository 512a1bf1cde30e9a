// Command crashdaemon is a gozd program that never serves, for the tests of
// failed starts: by default its worker prints a line and exits 3 right after
// Daemonize; built with -ldflags "-X main.behavior=hang" its worker never
// registers a handler, so it is never ready.
package main

import (
	"fmt"
	"os"

	"github.com/gozd/gozd"
)

// behavior is "crash" or "hang"; set at build time.
var behavior = "crash"

func main() {
	daemonChan := gozd.Daemonize()
	if behavior == "hang" {
		<-daemonChan
		return
	}
	fmt.Fprintf(os.Stderr, "crashdaemon: giving up on purpose, pid %d\n", os.Getpid())
	os.Exit(3)
}

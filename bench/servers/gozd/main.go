// Command gozd is the benchmark's gozd daemon: the seed API with the bench's
// trivial handlers on an http group "web" and a tcp group "echo".
package main

import (
	"fmt"
	"os"

	"github.com/gozd/gozd"
	"github.com/gozd/gozd/bench/servers/internal/trivial"
)

var version = "dev"

func main() {
	daemonChan := gozd.Daemonize()
	if err := gozd.RegistHandler("web", "trivial.Handler", trivial.Handler(version)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := gozd.RegistHandler("echo", "trivial.Echo", func(c gozd.Conn) { trivial.Echo(c) }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	<-daemonChan
}

// Command gozd is the benchmark's gozd daemon: the seed API with the bench's
// trivial handlers on an http group "web" and a tcp group "echo". The scale
// phase's configs add more http groups, web1 to web99, and a tcp group
// "hold".
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/gozd/gozd"
	"github.com/gozd/gozd/bench/servers/internal/trivial"
)

var version = "dev"

func main() {
	daemonChan := gozd.Daemonize()
	web := trivial.Handler(version)
	// Only the groups the config has: trying the scale phase's hundred
	// names on every start, most of them unknown to the config, took a
	// new worker some 0.15 ms of CPU (in a profile of its start) that
	// tableflip's server does not spend.
	for _, g := range gozd.Worker().Config().Groups {
		var h any
		switch {
		case strings.HasPrefix(g.Name, "web"):
			h = web
		case g.Name == "echo":
			h = func(c gozd.Conn) { trivial.Echo(c) }
		case g.Name == "hold":
			h = hold
		default:
			fmt.Fprintf(os.Stderr, "bench server: no handler for group %q\n", g.Name)
			os.Exit(1)
		}
		if err := gozd.RegistHandler(g.Name, g.Name, h); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	<-daemonChan
}

// hold writes one byte, so that the client knows the worker took the
// connection, then holds it until this worker drains: a long-lived
// session that is not handed over, closed by gozd when the handler returns.
func hold(c gozd.Conn) {
	if _, err := c.Write([]byte{'h'}); err != nil {
		return
	}
	<-c.Context().Done()
}

// Command gozd is the benchmark's gozd daemon: the seed API with the bench's
// trivial handlers on an http group "web" and a tcp group "echo". The scale
// phase's configs add more http groups, web1 to web99, and a tcp group
// "hold"; a group the config does not have is skipped.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/gozd/gozd"
	"github.com/gozd/gozd/bench/servers/internal/trivial"
)

var version = "dev"

// maxWebGroups bounds the http groups a config may have, web and web1 to
// web99.
const maxWebGroups = 100

func main() {
	daemonChan := gozd.Daemonize()
	regist := func(group string, handler any, optional bool) {
		err := gozd.RegistHandler(group, group, handler)
		if err != nil && !(optional && errors.Is(err, gozd.ErrUnknownGroup)) {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	web := trivial.Handler(version)
	regist("web", web, false)
	regist("echo", func(c gozd.Conn) { trivial.Echo(c) }, false)
	for i := 1; i < maxWebGroups; i++ {
		regist(fmt.Sprintf("web%d", i), web, true)
	}
	regist("hold", hold, true)
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

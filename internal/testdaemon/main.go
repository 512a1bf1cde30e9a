// Command testdaemon is the gozd program the reload tests build, run and
// replace on disk. It serves whichever of a fixed set of groups its config
// declares, so one binary fits every test config:
//
//	group           mode  handler
//	web, web2       http  the version handler below
//	fcgi, fcgi2     fcgi  the version handler below
//	echo            tcp   a line echo that ignores the drain, so a held
//	                      connection keeps its old worker alive
//
// The version handler answers GET / with "VERSION PID\n" and the headers
// X-Version and X-Pid, GET /sleep?d=DURATION after that long, and panics on
// GET /panic, and logs the query parameter m on GET /log (log.Printf and
// gozd.Logger); the echo panics on the line "panic".
//
// Build with -ldflags "-X main.version=v2 -X main.behavior=B" where B is
// empty for a normal daemon, "crash" for a worker that exits 3 right after
// Daemonize, "hang" for one that never registers its handlers, or "slow" for
// one that takes two seconds to register them (a reload that stays under
// way long enough for signals to pile up behind it).
package main

import (
	"bufio"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gozd/gozd"
)

var (
	version  = "dev"
	behavior = ""
)

func main() {
	daemonChan := gozd.Daemonize()
	switch behavior {
	case "crash":
		fmt.Fprintf(os.Stderr, "testdaemon %s: crashing on purpose\n", version)
		os.Exit(3)
	case "hang":
		fmt.Fprintf(os.Stderr, "testdaemon %s: hanging on purpose\n", version)
		for {
			time.Sleep(time.Hour)
		}
	case "slow":
		time.Sleep(2 * time.Second)
	}

	web := http.HandlerFunc(serveVersion)
	handlers := []struct {
		group   string
		handler any
	}{
		{"web", web},
		{"web2", web},
		{"fcgi", web},
		{"fcgi2", web},
		{"echo", echo},
	}
	for _, h := range handlers {
		// A test config declares only some of the groups.
		if err := gozd.RegistHandler(h.group, h.group, h.handler); err != nil && !errors.Is(err, gozd.ErrUnknownGroup) {
			fmt.Fprintf(os.Stderr, "testdaemon %s: %v\n", version, err)
			os.Exit(1)
		}
	}
	<-daemonChan
}

func serveVersion(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Version", version)
	w.Header().Set("X-Pid", strconv.Itoa(os.Getpid()))
	if r.URL.Path == "/panic" {
		panic("testdaemon: panic on purpose")
	}
	if r.URL.Path == "/log" {
		// The program's own log lines, through the standard log package
		// and through gozd.Logger.
		log.Printf("testdaemon: %s", r.URL.Query().Get("m"))
		gozd.Logger().Info("testdaemon slog", "m", r.URL.Query().Get("m"))
	}
	if r.URL.Path == "/sleep" {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 || d > time.Minute {
			http.Error(w, "bad d", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	fmt.Fprintf(w, "%s %d\n", version, os.Getpid())
}

// echo writes back every line it reads until the client closes. Unlike a
// well-behaved handler it does not watch conn.Context(): the tests need a
// connection that outlives the drain until the client ends it or
// drain_timeout cuts it.
func echo(conn gozd.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if line == "panic\n" {
			panic("testdaemon: echo panics on purpose")
		}
		if len(line) > 0 {
			if _, werr := conn.Write([]byte(line)); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

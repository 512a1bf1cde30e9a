// Command testdaemon is the gozd program the reload tests build, run and
// replace on disk. It serves whichever of a fixed set of groups its config
// declares, so one binary fits every test config:
//
//	group           mode  handler
//	web, web2       http  the version handler below
//	tls             https the version handler below
//	fcgi, fcgi2     fcgi  the version handler below
//	echo            tcp   a line echo that ignores the drain, so a held
//	                      connection keeps its old worker alive
//	session         tcp   answers every line with "COUNT PID\n", COUNT
//	                      counting the session's lines; at the drain it
//	                      hands the connection and the count to the new
//	                      worker (Conn.Handoff)
//	udp             udp   answers each datagram with "VERSION PID " and
//	                      the datagram
//
// The version handler answers GET / with "VERSION PID\n" and the headers
// X-Version and X-Pid, GET /sleep?d=DURATION after that long, and panics on
// GET /panic, and logs the query parameter m on GET /log (log.Printf and
// gozd.Logger); the echo panics on the line "panic". GET /stream streams
// "VERSION PID\n", then "bye\n" once the worker drains; GET /hijack does
// the same on the hijacked connection.
//
// Build with -ldflags "-X main.version=v2 -X main.behavior=B" where B is
// empty for a normal daemon, "crash" for a worker that exits 3 right after
// Daemonize, "hang" for one that never registers its handlers, or "slow" for
// one that takes two seconds to register them (a reload that stays under
// way long enough for signals to pile up behind it).
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
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
		{"tls", web},
		{"udp", udpEcho},
		{"fcgi", web},
		{"fcgi2", web},
		{"echo", echo},
		{"session", session},
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
	// The addresses net/http saw, also on a connection taken over from the
	// previous worker.
	w.Header().Set("X-Remote-Addr", r.RemoteAddr)
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		w.Header().Set("X-Local-Addr", a.String())
	}
	switch r.URL.Path {
	case "/panic":
		panic("testdaemon: panic on purpose")
	case "/stream", "/hijack":
		serveUntilDrain(w, r)
		return
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

// serveUntilDrain holds a response (or, for /hijack, the hijacked
// connection) open until the worker drains, as a websocket or an event
// stream would, and says goodbye then.
func serveUntilDrain(w http.ResponseWriter, r *http.Request) {
	hello := fmt.Sprintf("%s %d\n", version, os.Getpid())
	if r.URL.Path == "/hijack" {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + hello)
		brw.Flush()
		<-gozd.Draining()
		c.Write([]byte("bye\n"))
		return
	}
	w.Header().Set("X-Version", version)
	w.Header().Set("X-Pid", strconv.Itoa(os.Getpid()))
	io.WriteString(w, hello)
	http.NewResponseController(w).Flush()
	select {
	case <-gozd.Draining():
		io.WriteString(w, "bye\n")
	case <-r.Context().Done():
	}
}

// session counts the lines of a connection, across workers: at the drain
// it stops reading at a line boundary and hands the connection over with
// the count and any bytes of a next line it read.
func session(conn gozd.Conn) {
	var count uint64
	var rest []byte
	if state, ok := conn.Resumed(); ok && len(state) >= 8 {
		count, rest = binary.BigEndian.Uint64(state), state[8:]
	}
	draining := conn.Context().Done()
	for {
		r := bufio.NewReader(io.MultiReader(bytes.NewReader(rest), conn))
		lines := make(chan string)
		readErr := make(chan error, 1)
		go func() {
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					rest = []byte(line) // a partial line, for the state
					readErr <- err
					return
				}
				lines <- line
			}
		}()
	serve:
		for {
			select {
			case <-lines:
				count++
				fmt.Fprintf(conn, "%d %d\n", count, os.Getpid())
			case <-readErr:
				return // the client is gone
			case <-draining:
				break serve
			}
		}
		// Wake the reader, then keep what it read beyond the last line.
		conn.SetReadDeadline(time.Unix(1, 0))
		for {
			select {
			case <-lines:
				count++
				fmt.Fprintf(conn, "%d %d\n", count, os.Getpid())
				continue
			case err := <-readErr:
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					return
				}
			}
			break
		}
		buffered, _ := r.Peek(r.Buffered())
		rest = append(rest, buffered...)
		conn.SetReadDeadline(time.Time{})
		state := binary.BigEndian.AppendUint64(nil, count)
		err := conn.Handoff(append(state, rest...))
		if err == nil {
			return
		}
		// No new worker takes it (a stop): serve on until the client
		// leaves or drain_timeout cuts the connection.
		fmt.Fprintf(os.Stderr, "testdaemon %s: session handoff: %v\n", version, err)
		draining = nil
	}
}

// udpEcho answers every datagram with "VERSION PID " and the datagram, until
// the drain ends its reads.
func udpEcho(pc gozd.PacketConn) {
	buf := make([]byte, 64<<10)
	prefix := fmt.Sprintf("%s %d ", version, os.Getpid())
	for {
		n, addr, err := pc.ReadFrom(buf)
		if n > 0 {
			pc.WriteTo(append([]byte(prefix), buf[:n]...), addr)
		}
		if err != nil {
			return
		}
	}
}

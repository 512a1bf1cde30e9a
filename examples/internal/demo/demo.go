// Package demo holds the handlers shared by the gozd example programs, so
// that every example serves the same thing and the tests can drive them
// alike: a line echo for tcp groups and a small HTTP handler for http, https
// and fcgi groups.
package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/gozd/gozd"
)

// MaxSleep bounds the d parameter of GET /sleep.
const MaxSleep = 60 * time.Second

// Handler returns the demo HTTP handler. Every response carries the header
// X-Gozd-Version: version, so a client can tell which build answered.
//
//	GET /             hello from gozd http <version> pid <pid>
//	GET /version      <version>
//	GET /sleep?d=2s   waits d (at most MaxSleep), then: slept 2s <version>
//
// /sleep answers 400 Bad Request when d is missing, not a Go duration,
// negative or above MaxSleep. It gives up early, without an answer, if the
// client goes away. Other paths answer 404.
func Handler(version string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from gozd http %s pid %d\n", version, os.Getpid())
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s\n", version)
	})
	mux.HandleFunc("GET /sleep", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 || d > MaxSleep {
			http.Error(w, fmt.Sprintf("d must be a duration from 0s to %v, as in /sleep?d=2s", MaxSleep), http.StatusBadRequest)
			return
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "slept %v %s\n", d, version)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Gozd-Version", version)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		mux.ServeHTTP(w, r)
	})
}

// Echo writes every line it reads from conn back to it, until the client
// closes the connection or the connection fails. A line longer than the read
// buffer is echoed in pieces.
//
// Once gozd starts draining this process (conn.Context() is done), Echo still
// answers what the client has already sent, and finishes a line the client is
// in the middle of, then closes the connection instead of waiting for more.
// It does not bound that last line: the daemon's drain_timeout does.
func Echo(conn gozd.Conn) {
	defer conn.Close()
	ctx := conn.Context()

	// A Read blocked on an idle client would hold the drain up until
	// drain_timeout; an expired deadline wakes it up.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()

	r := bufio.NewReader(conn)
	midLine := false
	for {
		chunk, err := r.ReadSlice('\n')
		if len(chunk) > 0 {
			if _, werr := conn.Write(chunk); werr != nil {
				return
			}
			midLine = chunk[len(chunk)-1] != '\n'
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			if !midLine {
				return
			}
			// Only the AfterFunc above sets a deadline and it has run,
			// so clearing it here is final: read the rest of the line.
			conn.SetReadDeadline(time.Time{})
		default:
			return // io.EOF: the client closed; anything else: conn broke
		}
		if ctx.Err() != nil && !midLine && r.Buffered() == 0 {
			return
		}
	}
}

package gozd

// Benchmarks of gozd's per-request path against the plain net/http (and
// net/http/fcgi) server, both on this machine over real loopback
// connections, in this process: the Daemon serves with the same code as a
// worker. Compare the pairs:
//
//	go test -run '^$' -bench 'KeepAlive' -benchmem -count 6 . | tee new.txt
//	go run golang.org/x/perf/cmd/benchstat@latest new.txt
//
// The client is part of what is measured (it runs in this process) and costs
// the same in both; the difference between a pair is gozd's own work.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/fcgi"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var benchBody = []byte("hello from the benchmark\n")

func benchHello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Write(benchBody)
}

// benchDaemon serves benchHello on one group of mode on 127.0.0.1:0 and
// returns its address.
func benchDaemon(b *testing.B, mode Mode) string {
	b.Helper()
	text := "[bench]\nmode " + string(mode) + "\nlisten 127.0.0.1:0\n"
	cfg, err := ParseConfig(filepath.Join(b.TempDir(), "bench.conf"), strings.NewReader(text))
	if err != nil {
		b.Fatal(err)
	}
	td := serveTestDaemon(b, context.Background(), cfg, map[string]any{"bench": benchHello})
	return td.addr(b, "bench").String()
}

// benchListen listens on 127.0.0.1:0 for a plain server.
func benchListen(b *testing.B) net.Listener {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	return ln
}

func BenchmarkHTTPKeepAlivePlain(b *testing.B) {
	ln := benchListen(b)
	// The timeouts gozd's servers have, so that both arm the same
	// deadlines.
	srv := &http.Server{
		Handler:           http.HandlerFunc(benchHello),
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	benchHTTPKeepAlive(b, ln.Addr().String())
}

func BenchmarkHTTPKeepAliveGozd(b *testing.B) {
	benchHTTPKeepAlive(b, benchDaemon(b, ModeHTTP))
}

// benchHTTPKeepAlive sends GETs on keep-alive connections to addr, one
// connection per parallel client, and checks every response.
func benchHTTPKeepAlive(b *testing.B, addr string) {
	benchKeepAlive(b, addr, []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n"), readBenchResponse)
}

// benchKeepAlive writes req on a connection to addr per parallel client, as
// often as the benchmark asks, and reads each answer with read.
func benchKeepAlive(b *testing.B, addr string, req []byte, read func(*bufio.Reader) error) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			if err := read(br); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// readBenchResponse reads one response to benchHello without allocating.
func readBenchResponse(br *bufio.Reader) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return &benchError{"status line " + strconv.Quote(string(line))}
	}
	length := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if length != len(benchBody) {
		return &benchError{"content length " + strconv.Itoa(length)}
	}
	body, err := br.Peek(length)
	if err != nil {
		return err
	}
	if !bytes.Equal(body, benchBody) {
		return &benchError{"body " + strconv.Quote(string(body))}
	}
	_, err = br.Discard(length)
	return err
}

type benchError struct{ what string }

func (e *benchError) Error() string { return "unexpected " + e.what }

func BenchmarkFCGIKeepAlivePlain(b *testing.B) {
	ln := benchListen(b)
	go fcgi.Serve(ln, http.HandlerFunc(benchHello))
	benchFCGIKeepAlive(b, ln.Addr().String())
}

func BenchmarkFCGIKeepAliveGozd(b *testing.B) {
	benchFCGIKeepAlive(b, benchDaemon(b, ModeFCGI))
}

// benchFCGIKeepAlive sends GETs on kept FastCGI connections to addr, as a
// web server with fastcgi_keep_conn does, one per parallel client.
func benchFCGIKeepAlive(b *testing.B, addr string) {
	benchKeepAlive(b, addr, fcgiGET(1, "/", true), readBenchFCGIResponse)
}

// readBenchFCGIResponse reads records up to END_REQUEST, checking that the
// body came.
func readBenchFCGIResponse(br *bufio.Reader) error {
	sawBody := false
	for {
		h, err := br.Peek(8)
		if err != nil {
			return err
		}
		typ := h[1]
		n := int(binary.BigEndian.Uint16(h[4:6])) + int(h[6])
		br.Discard(8)
		if typ == fcgiTypeStdout && n > 0 {
			content, err := br.Peek(n)
			if err != nil {
				return err
			}
			sawBody = sawBody || bytes.Contains(content, benchBody)
		}
		if _, err := br.Discard(n); err != nil {
			return err
		}
		if typ == fcgiTypeEndRequest {
			if !sawBody {
				return &benchError{"response without the body"}
			}
			return nil
		}
	}
}

// BenchmarkConnTrackerStats is the cost of one connection report of a group
// with 10,000 open connections (reportToMaster makes one every 250 ms).
func BenchmarkConnTrackerStats(b *testing.B) {
	t := newConnTracker()
	for range 10000 {
		t.add(&tcpConn{})
	}
	b.ReportAllocs()
	for b.Loop() {
		if g := t.stats("bench"); g.Active != 10000 {
			b.Fatalf("stats: %+v", g)
		}
	}
}

// BenchmarkSetReadDeadline is the cost of one read deadline, which net/http
// sets four to six times per keep-alive request: on the connection itself,
// and through gozd's wrapper of it.
func BenchmarkSetReadDeadline(b *testing.B) {
	ln := benchListen(b)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	// Already in the backlog: Accept returns at once.
	peer, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { peer.Close() })
	for _, bc := range []struct {
		name string
		conn net.Conn
	}{{"plain", c}, {"gozd", &httpConn{Conn: c}}} {
		b.Run(bc.name, func(b *testing.B) {
			t := time.Now().Add(time.Hour)
			for b.Loop() {
				if err := bc.conn.SetReadDeadline(t); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

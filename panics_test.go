package gozd_test

// A handler that panics costs one request: through a real daemon, without
// -v, each kind of group answers the panicking request as well as it can,
// keeps the worker and the connection, and logs the panic at ERROR.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gozd/gozd"
)

func TestHandlerPanicCostsOneRequest(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, `
[web]
mode http
listen 127.0.0.1:0

[fcgi]
mode fcgi
listen %DIR%/fcgi.sock

[echo]
mode tcp
listen 127.0.0.1:0
`)
	worker := d.worker()

	t.Run("http", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", d.addrs["web"], waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitTimeout))
		r := bufio.NewReader(c)
		resp := rawGet(t, c, r, "/panic")
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("GET /panic: status %d, want 500", resp.StatusCode)
		}
		// The same connection serves the next request.
		resp = rawGet(t, c, r, "/")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Pid") != fmt.Sprint(worker) {
			t.Fatalf("GET / after the panic on the same connection: status %d, pid %s, want 200 from worker %d", resp.StatusCode, resp.Header.Get("X-Pid"), worker)
		}
	})

	t.Run("fcgi", func(t *testing.T) {
		sock := dir + "/fcgi.sock"
		if _, _, err := fcgiGet(sock, "/panic"); err == nil || !strings.Contains(err.Error(), "status 500") {
			t.Fatalf("fcgi /panic: %v, want a 500 answer", err)
		}
		if _, pid, err := fcgiGet(sock, "/"); err != nil || pid != worker {
			t.Fatalf("fcgi / after the panic: pid %d, %v; want an answer from worker %d", pid, err, worker)
		}
	})

	t.Run("tcp", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", d.addrs["echo"], waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := io.WriteString(c, "panic\n"); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("after the echo panicked: read %d, %v; want EOF", n, err)
		}
		if err := echoOnce(d.addrs["echo"], 1); err != nil {
			t.Fatalf("echo after a panic: %v", err)
		}
	})

	if w := d.worker(); w != worker {
		t.Fatalf("worker %d was replaced by %d: a panic cost more than its request", worker, w)
	}
	for _, msg := range []string{`level=ERROR msg="handler panicked" pid=%d role=worker gen=1 group=web method=GET path=/panic`,
		`level=ERROR msg="handler panicked" pid=%d role=worker gen=1 group=fcgi method=GET path=/panic`,
		`level=ERROR msg="tcp handler panicked" pid=%d role=worker gen=1 group=echo`} {
		// The worker's log reaches the master's output through a pipe.
		var line string
		waitUntil(t, "log line "+fmt.Sprintf(msg, worker), func() bool {
			var ok bool
			line, ok = d.proc.out.line(fmt.Sprintf(msg, worker))
			return ok
		})
		if !strings.Contains(line, "on purpose") || !strings.Contains(line, "stack=") {
			t.Errorf("the log line does not give the panic and its stack: %s", line)
		}
	}
}

// rawGet sends a keep-alive GET for path on c and reads the response.
func rawGet(t *testing.T, c net.Conn, r *bufio.Reader, path string) *http.Response {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestServerNoiseStaysQuiet: what scanners and broken clients make net/http
// report (a failed TLS handshake) stays at DEBUG, so the ERROR level keeps
// meaning "look at this".
func TestServerNoiseStaysQuiet(t *testing.T) {
	dir := t.TempDir()
	key, cert := writeKeyPair(t, dir)
	cfg := &gozd.Config{Groups: []gozd.GroupConfig{{Name: "tls", Mode: gozd.ModeHTTPS, Network: "tcp", Address: "127.0.0.1:0", Key: key, Cert: cert}}}
	var logs syncBuffer
	d, err := gozd.New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.HandleFunc("tls", func(http.ResponseWriter, *http.Request) {}); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(context.Background()) }()
	t.Cleanup(func() {
		d.Close()
		<-served
	})
	select {
	case <-d.Ready():
	case <-time.After(waitTimeout):
		t.Fatal("not ready")
	}
	c, err := net.DialTimeout("tcp", d.Addrs()["tls"].String(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n") // plain HTTP to a TLS port
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	io.Copy(io.Discard, c)
	c.Close()
	waitUntil(t, "the handshake error in the log", func() bool { return strings.Contains(logs.String(), "TLS handshake error") })
	line, _ := logs.line("TLS handshake error")
	if !strings.HasPrefix(strings.SplitN(line, " ", 2)[1], "level=DEBUG") {
		t.Fatalf("a client's failed TLS handshake is logged above DEBUG: %s", line)
	}
}

// TestHandlerPanicOnHandedOverFCGI: a FastCGI connection kept by the web
// server moves to the new worker at a reload, and a panic on it there costs
// one request too, not the worker.
func TestHandlerPanicOnHandedOverFCGI(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, "drain_timeout 20s\n[fcgi]\nmode fcgi\nlisten %DIR%/f.sock\n")
	c, err := net.DialTimeout("unix", dir+"/f.sock", waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if out, err := fcgiKeptGet(c, "/"); err != nil || !strings.Contains(out, "v1 ") {
		t.Fatalf("first request: %q, %v", out, err)
	}
	old := d.worker()
	d.reloadTimes(1, 0)
	d.expectQuickExit(old, 10*time.Second, "a kept FastCGI connection, idle")
	nw := d.worker()
	if out, err := fcgiKeptGet(c, "/panic"); err != nil || !strings.Contains(out, "Status: 500") {
		t.Fatalf("/panic on the handed-over connection: %q, %v; want a 500", out, err)
	}
	if out, err := fcgiKeptGet(c, "/"); err != nil || !strings.Contains(out, fmt.Sprintf("v1 %d", nw)) {
		t.Fatalf("after the panic, on the same connection: %q, %v; want an answer from worker %d", out, err, nw)
	}
	if w := d.worker(); w != nw {
		t.Fatalf("worker %d was replaced by %d after a panic", nw, w)
	}
}

// fcgiKeptGet sends a GET for path on c with FCGI_KEEP_CONN, as nginx with
// fastcgi_keep_conn does, and returns the STDOUT stream up to END_REQUEST.
func fcgiKeptGet(c net.Conn, path string) (string, error) {
	c.SetDeadline(time.Now().Add(waitTimeout))
	var req []byte
	record := func(typ byte, content []byte) {
		req = append(req, 1, typ, 0, 1, byte(len(content)>>8), byte(len(content)), 0, 0)
		req = append(req, content...)
	}
	record(fcgiBeginRequest, []byte{0, fcgiResponder, 1, 0, 0, 0, 0, 0}) // flags 1: keep the connection
	var params []byte
	for _, kv := range [][2]string{{"REQUEST_METHOD", "GET"}, {"SERVER_PROTOCOL", "HTTP/1.1"}, {"REQUEST_URI", path}, {"HTTP_HOST", "localhost"}} {
		params = append(params, byte(len(kv[0])), byte(len(kv[1])))
		params = append(params, kv[0]+kv[1]...)
	}
	record(fcgiParams, params)
	record(fcgiParams, nil)
	record(fcgiStdin, nil)
	if _, err := c.Write(req); err != nil {
		return "", err
	}
	var stdout []byte
	for {
		var h [8]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return string(stdout), err
		}
		content := make([]byte, int(h[4])<<8|int(h[5])+int(h[6]))
		if _, err := io.ReadFull(c, content); err != nil {
			return string(stdout), err
		}
		switch h[1] {
		case fcgiStdout:
			stdout = append(stdout, content[:int(h[4])<<8|int(h[5])]...)
		case fcgiEndRequest:
			return string(stdout), nil
		}
	}
}

package gozd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHandoffWithoutHeir: Conn.Handoff with nobody to take the connection
// (a Daemon outside a master, draining or not) fails with ErrNoHandoff and
// leaves the connection usable; Resumed is false for an accepted one.
func TestHandoffWithoutHeir(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{{Name: "raw", Mode: ModeTCP, Network: "tcp", Address: "127.0.0.1:0"}}}
	handler := func(c Conn) {
		_, resumed := c.Resumed()
		err := c.Handoff([]byte("state"))
		fmt.Fprintf(c, "serving: resumed %v, %v\n", resumed, errors.Is(err, ErrNoHandoff))
		<-c.Context().Done()
		err = c.Handoff([]byte("state"))
		fmt.Fprintf(c, "draining: %v\n", errors.Is(err, ErrNoHandoff))
	}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"raw": handler})
	c := dialTCP(t, td.addr(t, "raw"))
	c.SetReadDeadline(time.Now().Add(serveWait))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); line != "serving: resumed false, true\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	shut := shutdownAsync(td.Daemon, context.Background())
	if line, err := r.ReadString('\n'); line != "draining: true\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	if rest, err := io.ReadAll(r); len(rest) != 0 || err != nil {
		t.Errorf("after the handler returned: %q, %v; want EOF", rest, err)
	}
	waitErr(t, shut, "Shutdown")
}

// FuzzParseBatch: a batch message from another worker never panics the
// parser, and what it accepts is what appendEntry wrote.
func FuzzParseBatch(f *testing.F) {
	msg := []byte{'C'}
	msg = appendEntry(msg, handoffEntry{kind: handoffHTTP, group: "web"})
	msg = appendEntry(msg, handoffEntry{kind: handoffTCP, group: "session", state: []byte("12345678state")})
	f.Add(msg, 2)
	msg = []byte{'D'}
	msg = appendEntry(msg, handoffEntry{kind: handoffHTTP, group: "web", laddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, raddr: &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 4711, Zone: "eth0"}})
	msg = appendEntry(msg, handoffEntry{kind: handoffFCGI, group: "php", laddr: &net.UnixAddr{Name: "/run/php.sock", Net: "unix"}})
	f.Add(msg, 2)
	f.Add([]byte{'C', 'h', 254, 0, 0, 0, 0}, 1)
	f.Add([]byte{'G', '['}, 0)
	f.Fuzz(func(t *testing.T, b []byte, nfds int) {
		entries, err := parseBatch(b, nfds)
		if err != nil {
			return
		}
		again := []byte{b[0]}
		for _, e := range entries {
			again = appendEntry(again, e)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parsed %q into %d entries that write back as %q", b, len(entries), again)
		}
	})
}

// TestFCGIRecordsBetweenRequests: a FastCGI connection is between requests
// at a record boundary once every request begun has ended, however its
// records are split across reads; records of an ended request that come
// after END_REQUEST (a POST's final empty FCGI_STDIN) leave it so.
func TestFCGIRecordsBetweenRequests(t *testing.T) {
	c := &fcgiConn{}
	between := func(_, status uint64) bool { return fcgiBetween(status) }
	stream := fcgiGET(1, "/", true)
	stdin := fcgiRecord(fcgiTypeStdin, 1, nil)
	stream = stream[:len(stream)-len(stdin)] // the empty STDIN comes after the answer
	for i := range stream {
		if between(c.afterRead(stream[i : i+1])) {
			t.Fatalf("between requests after %d of %d bytes of a request", i+1, len(stream))
		}
	}
	end := fcgiRecord(fcgiEndRequest, 1, make([]byte, 8))
	if !between(c.requestEnded(end)) {
		t.Fatal("not between requests after END_REQUEST")
	}
	if between(c.afterRead(stdin[:3])) {
		t.Fatal("between requests in the middle of a record")
	}
	if !between(c.afterRead(stdin[3:])) {
		t.Fatal("not between requests after the ended request's last record")
	}
	// A second request on the same connection, in one read.
	if between(c.afterRead(fcgiGET(2, "/", true))) {
		t.Fatal("between requests with request 2 begun")
	}
	if between(c.requestEnded(fcgiRecord(fcgiEndRequest, 1, make([]byte, 8)))) {
		t.Fatal("between requests after an END_REQUEST of another id")
	}
	if !between(c.requestEnded(fcgiRecord(fcgiEndRequest, 2, make([]byte, 8)))) {
		t.Fatal("not between requests after request 2 ended")
	}
	// An aborted request is ended twice (net/http/fcgi answers the abort,
	// then the handler's end): the second END_REQUEST changes nothing.
	if !between(c.requestEnded(fcgiRecord(fcgiEndRequest, 2, make([]byte, 8)))) {
		t.Fatal("not between requests after request 2 ended twice")
	}

	// A web server multiplexing more requests than the status word's
	// slots hold, ended in another order than begun.
	const n = fcgiSlots + 3
	for id := uint16(10); id < 10+n; id++ {
		if between(c.afterRead(fcgiGET(id, "/", true))) {
			t.Fatalf("between requests with request %d begun", id)
		}
	}
	for _, id := range []uint16{10 + n - 1, 10, 12, 10 + n - 2, 11, 13} {
		if got := between(c.requestEnded(fcgiRecord(fcgiEndRequest, id, make([]byte, 8)))); got != (id == 13) {
			t.Fatalf("after request %d ended: between requests = %v", id, got)
		}
	}
	if c.status.Load()&statusIdle == 0 {
		t.Error("not idle between requests")
	}
}

// TestResumeTCPWaitsForGo plays the previous worker on a new worker's inbox,
// with real sockets: a tcp connection it passes is served by the new
// worker's handler only once it says go ('Y'); told no ('N', the old worker
// timed out waiting for the ack and serves on), the new worker closes its
// copy without running the handler, so no connection is served twice.
func TestResumeTCPWaitsForGo(t *testing.T) {
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	oldEnd := os.NewFile(uintptr(sp[0]), "old worker's end")
	defer oldEnd.Close()
	fc, err := net.FileConn(oldEnd)
	if err != nil {
		t.Fatal(err)
	}
	old := fc.(*net.UnixConn)
	defer old.Close()

	cfg := &Config{Groups: []GroupConfig{{Name: "raw", Mode: ModeTCP, Network: "tcp", Address: "127.0.0.1:0"}}}
	td := newTestDaemon(t, cfg)
	if err := td.openInbox(sp[1]); err != nil {
		t.Fatal(err)
	}
	if err := td.HandleConn("raw", func(c Conn) {
		state, _ := c.Resumed()
		fmt.Fprintf(c, "served %s\n", state)
	}); err != nil {
		t.Fatal(err)
	}
	td.start(context.Background())
	td.waitReady(t)
	old.SetDeadline(time.Now().Add(serveWait))
	buf := make([]byte, 64<<10)
	if n, err := old.Read(buf); err != nil || n == 0 || buf[0] != 'G' {
		t.Fatalf("greeting: %q, %v", buf[:n], err)
	}

	// pass hands a fresh connection over as the old worker would, and
	// returns the client's end and the id the new worker acknowledges.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pass := func(id uint64, state string) net.Conn {
		client := dialTCP(t, ln.Addr())
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close() // the old worker's copy, once the test is done with it
		fd, err := connFD(server)
		if err != nil {
			t.Fatal(err)
		}
		e := handoffEntry{kind: handoffTCP, group: "raw", state: append(binary.BigEndian.AppendUint64(nil, id), state...)}
		if _, _, err := old.WriteMsgUnix(appendEntry([]byte{'C'}, e), unix.UnixRights(fd), nil); err != nil {
			t.Fatal(err)
		}
		n, err := old.Read(buf)
		if err != nil || n != 9 || buf[0] != 'A' || binary.BigEndian.Uint64(buf[1:9]) != id {
			t.Fatalf("ack of %d: %q, %v", id, buf[:n], err)
		}
		return client
	}

	no := pass(1, "no")
	if _, err := old.Write(append([]byte{'N'}, binary.BigEndian.AppendUint64(nil, 1)...)); err != nil {
		t.Fatal(err)
	}
	yes := pass(2, "yes")
	if _, err := old.Write(append([]byte{'Y'}, binary.BigEndian.AppendUint64(nil, 2)...)); err != nil {
		t.Fatal(err)
	}
	yes.SetReadDeadline(time.Now().Add(serveWait))
	if line, err := bufio.NewReader(yes).ReadString('\n'); line != "served yes\n" {
		t.Fatalf("after go: %q, %v", line, err)
	}
	// pass closed the old worker's copy of "no" on return: with the new
	// worker's closed too, its client sees EOF, and nothing served it.
	no.SetReadDeadline(time.Now().Add(serveWait))
	if rest, err := io.ReadAll(no); len(rest) != 0 || err != nil {
		t.Fatalf("after no: %q, %v; want EOF and nothing served", rest, err)
	}
}

// handedPair returns a client's end of a tcp connection on loopback and the
// server's end as a descriptor of its own, as one handed over arrives.
func handedPair(t *testing.T) (client net.Conn, fd int, laddr, raddr net.Addr) {
	t.Helper()
	client, server := loopbackPair(t)
	defer server.Close()
	rc, err := server.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd = -1
	rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil {
		t.Fatal(err)
	}
	return client, fd, server.LocalAddr(), server.RemoteAddr()
}

// loopbackPair returns both ends of a tcp connection on loopback, closed
// when the test ends.
func loopbackPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

// takenPair returns a client connection and the server's end of it served
// as a connection taken over from another worker: a bare descriptor and
// the addresses.
func takenPair(t *testing.T) (client net.Conn, taken *takenConn) {
	t.Helper()
	client, fd, laddr, raddr := handedPair(t)
	c, err := newTakenConn(fd, laddr, raddr)
	if err != nil {
		t.Fatal(err)
	}
	taken, ok := c.(*takenConn)
	if !ok {
		t.Fatalf("newTakenConn made a %T", c)
	}
	t.Cleanup(func() { taken.Close() })
	return client, taken
}

// TestTakenConn: a connection taken over from the previous worker, served
// through its bare descriptor, behaves as net's own: its addresses, a read
// timeout and a closed connection reported as net/http expects them
// (*net.OpError, net.ErrClosed), half-close; and NetConn switches it to a
// *net.TCPConn without losing a read that was waiting.
func TestTakenConn(t *testing.T) {
	client, c := takenPair(t)
	if c.LocalAddr().String() != client.RemoteAddr().String() || c.RemoteAddr().String() != client.LocalAddr().String() {
		t.Errorf("addresses %s → %s, want %s → %s", c.RemoteAddr(), c.LocalAddr(), client.LocalAddr(), client.RemoteAddr())
	}
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, err := c.Read(buf)
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || !oe.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %#v, want a *net.OpError read timeout", err)
	}
	c.SetReadDeadline(time.Time{})

	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf); string(buf[:n]) != "ping" || err != nil {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if _, err := c.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(serveWait))
	if n, err := io.ReadFull(client, buf[:4]); string(buf[:n]) != "pong" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}

	// A read blocked on the descriptor when NetConn switches carries on
	// on the *net.TCPConn.
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, err := c.Read(b)
		got <- fmt.Sprintf("%s %v", b[:n], err)
	}()
	time.Sleep(10 * time.Millisecond) // let the read block; it works either way
	nc := netConnBeneath(c)
	if _, ok := nc.(*net.TCPConn); !ok {
		t.Fatalf("NetConn of a taken-over connection is a %T, want *net.TCPConn", nc)
	}
	if _, err := client.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "after <nil>" {
			t.Fatalf("read across the switch: %q", s)
		}
	case <-time.After(serveWait):
		t.Fatal("read across the switch still blocked")
	}

	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(client); len(rest) != 0 || err != nil {
		t.Fatalf("after CloseWrite the client read %q, %v; want EOF", rest, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
}

// TestTakenConnClosed: closing a taken-over connection that never switched
// closes the socket (the client reads EOF), and its read errors say closed.
func TestTakenConnClosed(t *testing.T) {
	client, c := takenPair(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(serveWait))
	if rest, err := io.ReadAll(client); len(rest) != 0 || err != nil {
		t.Fatalf("after Close the client read %q, %v; want EOF", rest, err)
	}
	var oe *net.OpError
	if _, err := c.Write([]byte("x")); !errors.As(err, &oe) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %#v, want a *net.OpError with net.ErrClosed", err)
	}
}

// resumingListener wraps what it accepts as serveResumed wraps a taken-over
// connection of srv.
type resumingListener struct {
	net.Listener
	srv *http.Server
}

func (l resumingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return resumedHTTPConn(c, l.srv), nil
}

// TestResumedHTTPConnWaitsAsIdle: a taken-over connection whose first
// request comes a while after the takeover is served, whichever of
// net/http's timeouts the program's server sets: a server with ReadTimeout
// and no IdleTimeout lets an idle connection wait ReadTimeout.
func TestResumedHTTPConnWaitsAsIdle(t *testing.T) {
	for _, tc := range []struct {
		name string
		srv  *http.Server
	}{
		{"gozd's defaults", &http.Server{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute}},
		{"ReadTimeout only", &http.Server{ReadTimeout: time.Minute}},
		{"no timeouts", &http.Server{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := tc.srv
			srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
			go srv.Serve(resumingListener{ln, srv})
			defer srv.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Longer than the ReadHeaderTimeout above, which must
			// not apply before the first byte.
			time.Sleep(400 * time.Millisecond)
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(time.Minute))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("the first request on a taken-over connection: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %s", resp.Status)
			}
		})
	}
}

// TestCalledOffMoveReadsOn: a move of an idle HTTP connection that bytes of
// a next request overtook is called off, and the connection, whose read the
// move had woken with a deadline in the past, reads that request here; it is
// no longer moving, so closing it closes it.
func TestCalledOffMoveReadsOn(t *testing.T) {
	client, sc := loopbackPair(t)
	hc := &httpConn{Conn: sc}
	hc.SetReadDeadline(time.Now().Add(time.Hour)) // net/http's idle deadline
	if !hc.startMove(&handoffSender{}, "web") {
		t.Fatal("an idle connection with nothing read did not start moving")
	}
	buf := make([]byte, 64)
	if _, err := hc.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read of a moving connection: %v, want its wake-up", err)
	}
	// The race that calls a move off: the read that the move wakes
	// returns bytes instead, and the wrapper completes it so.
	hc.afterRead()
	if hc.mv.moving.Load() {
		t.Fatal("still moving after the move was called off")
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		io.WriteString(client, "GET / HTTP/1.1\r\n")
	}()
	n, err := hc.Read(buf)
	if err != nil || string(buf[:n]) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("read after the move was called off: %q, %v", buf[:n], err)
	}
	hc.Close()
	client.SetReadDeadline(time.Now().Add(serveWait))
	if _, err := client.Read(buf); err != io.EOF {
		t.Fatalf("client after the close: %v, want EOF", err)
	}
}

// TestMoveOutlivesLaterDeadline: net/http may set its idle deadline after a
// move has woken the read with one in the past (it sets it between
// reporting the connection idle and reading). The read that follows must
// still wake at once, not wait out the idle deadline.
func TestMoveOutlivesLaterDeadline(t *testing.T) {
	_, sc := loopbackPair(t)
	hc := &httpConn{Conn: sc}
	if !hc.startMove(&handoffSender{}, "web") {
		t.Fatal("an idle connection with nothing read did not start moving")
	}
	hc.SetReadDeadline(time.Now().Add(time.Hour)) // net/http's idle deadline, after the move's
	done := make(chan error, 1)
	go func() {
		_, err := hc.Read(make([]byte, 64))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read of a moving connection: %v, want its wake-up", err)
		}
	case <-time.After(serveWait):
		t.Fatal("the read of a moving connection waited for net/http's idle deadline")
	}
}

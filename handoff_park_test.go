package gozd

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// parkingGroup is an http group as a worker that takes connections over
// has it, with idle as its server's IdleTimeout.
func parkingGroup(t *testing.T, idle time.Duration) *groupServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	gs := &groupServer{cfg: &GroupConfig{Name: "web", Mode: ModeHTTP}, log: slog.New(slog.DiscardHandler), tracker: newConnTracker(), ln: ln}
	gs.http = &http.Server{IdleTimeout: idle}
	gs.resumed = newResumeListener(ln.Addr(), func(c net.Conn) net.Conn { return c })
	t.Cleanup(func() { gs.resumed.Close() })
	return gs
}

func newTestParking(t *testing.T) *parking {
	t.Helper()
	p, err := newParking()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

// parkedIdle is how many connections gs counts as idle.
func parkedIdle(gs *groupServer) int { return gs.tracker.stats(gs.cfg.Name).Idle }

// A parked connection is served once it has something to read: its server
// gets it with the bytes unread, and it no longer counts as parked.
func TestParkedConnServedOnFirstByte(t *testing.T) {
	p := newTestParking(t)
	gs := parkingGroup(t, time.Minute)
	client, fd, laddr, raddr := handedPair(t)
	if !p.park(gs, fd, handoffEntry{kind: handoffHTTP, group: "web", laddr: laddr, raddr: raddr}) {
		t.Fatal("park refused an open set")
	}
	if n := parkedIdle(gs); n != 1 {
		t.Fatalf("%d idle connections with one parked, want 1", n)
	}
	// An event left over from an earlier connection on the same
	// descriptor number, saying it was reset, is not this one's.
	p.mu.Lock()
	seq := p.conns[fd].seq
	p.mu.Unlock()
	p.wake(fd, seq-1, unix.EPOLLIN|unix.EPOLLHUP)
	if n := parkedIdle(gs); n != 1 {
		t.Fatalf("%d idle connections after a stale event, want 1 still parked", n)
	}
	if readable(fd) {
		t.Error("readable before the client sent anything")
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := gs.resumed.Accept(); err == nil {
			accepted <- c
		}
	}()
	select {
	case c := <-accepted:
		t.Fatalf("the server got %v before its first byte", c.RemoteAddr())
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := client.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	select {
	case c = <-accepted:
	case <-time.After(serveWait):
		t.Fatal("the parked connection was not served after its first byte")
	}
	defer c.Close()
	if c.RemoteAddr().String() != client.LocalAddr().String() {
		t.Errorf("served connection from %s, want %s", c.RemoteAddr(), client.LocalAddr())
	}
	c.SetReadDeadline(time.Now().Add(serveWait))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "GET" {
		t.Fatalf("read %q, %v from the served connection; want the client's GET", buf, err)
	}
	if n := parkedIdle(gs); n != 0 {
		t.Errorf("%d idle connections counted after it was served, want 0 (its server counts it now)", n)
	}
	// Handed over counts it once served, when its server counts it
	// accepted: the report's accepted are those less the handed over.
	// The count follows the delivery, which the server may see first.
	pollFor(t, "the served connection counted as handed over, once", func() bool { return gs.tracker.handedOver.Load() == 1 })
}

// A parked connection waits for its first byte as long as an idle one of
// its server would (IdleTimeout), then is closed.
func TestParkedConnIdleLimit(t *testing.T) {
	p := newTestParking(t)
	gs := parkingGroup(t, 300*time.Millisecond)
	start := time.Now()
	var clients []net.Conn
	for range 3 {
		client, fd, laddr, raddr := handedPair(t)
		p.park(gs, fd, handoffEntry{kind: handoffHTTP, group: "web", laddr: laddr, raddr: raddr})
		clients = append(clients, client)
	}
	for i, c := range clients {
		expectEOF(t, c, nil, "a parked connection past IdleTimeout")
		if i == 0 {
			if took := time.Since(start); took < 300*time.Millisecond {
				t.Errorf("closed after %v, before IdleTimeout (300ms)", took)
			}
		}
	}
	pollFor(t, "no idle connections counted", func() bool { return parkedIdle(gs) == 0 })
	if n := gs.tracker.handedOver.Load(); n != 0 {
		t.Errorf("handed over %d, none of them served; want 0", n)
	}
}

// A client that resets its parked connection frees its place; one that
// closes it gracefully is served, and its server reads the EOF.
func TestParkedConnClientGone(t *testing.T) {
	p := newTestParking(t)
	gs := parkingGroup(t, time.Minute)
	client, fd, laddr, raddr := handedPair(t)
	p.park(gs, fd, handoffEntry{kind: handoffHTTP, group: "web", laddr: laddr, raddr: raddr})
	client.(*net.TCPConn).SetLinger(0)
	client.Close()
	pollFor(t, "the reset connection's place freed", func() bool { return parkedIdle(gs) == 0 })

	client, fd, laddr, raddr = handedPair(t)
	p.park(gs, fd, handoffEntry{kind: handoffHTTP, group: "web", laddr: laddr, raddr: raddr})
	client.Close()
	c, err := gs.resumed.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(serveWait))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("server read %d bytes, %v from a connection its client closed; want EOF", n, err)
	}
}

// When the worker drains with nobody to hand its connections to (a stop),
// or closes, parked connections are closed at once, and nothing parks any
// more.
func TestParkingEnds(t *testing.T) {
	for _, end := range []struct {
		name string
		do   func(*parking)
	}{{"drain without heir", (*parking).drain}, {"close", (*parking).close}} {
		t.Run(end.name, func(t *testing.T) {
			p := newTestParking(t)
			gs := parkingGroup(t, time.Minute)
			client, fd, laddr, raddr := handedPair(t)
			p.park(gs, fd, handoffEntry{kind: handoffHTTP, group: "web", laddr: laddr, raddr: raddr})
			end.do(p)
			expectEOF(t, client, nil, "a parked connection at "+end.name)
			if n := parkedIdle(gs); n != 0 {
				t.Errorf("%d idle connections counted after %s, want 0", n, end.name)
			}
			_, fd2, _, _ := handedPair(t)
			if p.park(gs, fd2, handoffEntry{kind: handoffHTTP, group: "web"}) {
				t.Errorf("park took a connection after %s", end.name)
			}
			closeFDs([]int{fd2})
		})
	}
}

// A connection whose request came just as its idle time ran out, its event
// not yet handled, is not closed by the expiry: it stays to be served.
func TestParkedConnExpiryKeepsArrived(t *testing.T) {
	// A set nobody waits on: its events stay unhandled.
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	p := &parking{epfd: epfd, file: os.NewFile(uintptr(epfd), "test-parking"), conns: make(map[int]*parkedConn), queues: make(map[*groupServer]parkQueue)}
	t.Cleanup(p.close)
	gs := parkingGroup(t, 50*time.Millisecond)
	arrived, fd1, laddr, raddr := handedPair(t)
	p.park(gs, fd1, handoffEntry{kind: handoffHTTP, group: "web", laddr: laddr, raddr: raddr})
	idle, fd2, laddr, raddr := handedPair(t)
	p.park(gs, fd2, handoffEntry{kind: handoffHTTP, group: "web", laddr: laddr, raddr: raddr})
	if _, err := arrived.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	pollFor(t, "the request readable", func() bool { return readable(fd1) })
	time.Sleep(100 * time.Millisecond)
	p.expire()
	expectEOF(t, idle, nil, "the idle connection past its limit")
	p.mu.Lock()
	kept := p.conns[fd1] != nil
	p.mu.Unlock()
	if !kept {
		t.Fatal("the connection whose request had come was expired")
	}
	if n := parkedIdle(gs); n != 1 {
		t.Errorf("%d idle connections counted, want 1: the one whose request came", n)
	}
}

package gozd

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Parking: an HTTP/1.x or FastCGI connection taken over from the previous
// worker is idle (that is why it moved), and most stay idle a while. Serving
// one at once cost what accepting it would: a goroutine whose stack net/http
// grows to 8 KiB, its read and write buffers, the runtime's poller entry:
// 7 KiB of resident memory and 50 µs of CPU a connection, measured here,
// paid for thousands of them in the moment of a reload, on the CPUs the old
// worker needs to hand the rest over.
// So the new worker parks them in an epoll set of its own, at the cost of a
// map entry and one epoll_ctl each, and serves a connection only once it has
// something to read. The runtime's poller waits on the set's descriptor, so
// no thread is held for it.
//
// A parked connection leaves the set exactly once, by one of four ways, each
// under the set's lock: it is readable (served, or passed on if the group
// drains meanwhile; closed if the client reset it), its idle time ran out
// with nothing to read (closed: see parkIdleLimit), the worker drains
// (handed to the next worker, or closed when there is none), or the worker
// closes.

// parking is a worker's set of parked connections.
type parking struct {
	epfd int
	file *os.File // epfd, polled by the runtime; closed by drain or close

	mu       sync.Mutex
	seq      uint32                     // the last parkedConn.seq given
	conns    map[int]*parkedConn        // by descriptor
	queues   map[*groupServer]parkQueue // parked connections with a time limit, in the order they came
	timer    *time.Timer                // for the earliest limit
	closed   bool                       // nothing parks any more
	inflight sync.WaitGroup             // woken connections on their way to their server
}

// parkedConn is a connection waiting for its first byte.
type parkedConn struct {
	fd    int
	seq   uint32 // tells its events from those of an earlier connection on the same descriptor number
	gs    *groupServer
	entry handoffEntry
	until time.Time // when its idle time runs out; zero: never
}

// parkQueue holds a group's parked connections by arrival, and so by limit:
// every connection of a group gets the same idle time.
type parkQueue []*parkedConn

// newParking makes the set and starts waiting on it.
func newParking() (*parking, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile hands it to the runtime's poller:
	// an epoll set is readable while any of its descriptors is ready.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	p := &parking{epfd: epfd, file: os.NewFile(uintptr(epfd), "gozd-parking"), conns: make(map[int]*parkedConn), queues: make(map[*groupServer]parkQueue)}
	// A file the runtime does not poll has no deadlines: nothing would
	// wake the set's goroutine.
	if err := p.file.SetReadDeadline(time.Time{}); err != nil {
		p.file.Close()
		return nil, err
	}
	rc, err := p.file.SyscallConn()
	if err != nil {
		p.file.Close()
		return nil, err
	}
	go p.run(rc)
	return p, nil
}

// parkIdleLimit is how long a connection of gs taken over may wait for its
// first byte: what resumedHTTPConn gives one served at once, the wait
// between requests (IdleTimeout, else ReadTimeout), or, without one, the
// wait for a new connection's header (ReadHeaderTimeout), which net/http
// applies to a connection it was handed as new. Zero for no limit, as
// FastCGI has none.
func parkIdleLimit(gs *groupServer) time.Duration {
	srv := gs.http
	if gs.cfg.Mode != ModeHTTP || srv == nil {
		return 0
	}
	idle := srv.IdleTimeout
	if idle == 0 {
		idle = srv.ReadTimeout
	}
	if idle > 0 {
		return idle
	}
	return max(srv.ReadHeaderTimeout, 0)
}

// park adds fd, a connection of gs taken over with entry e, to the set. It
// reports false, leaving fd to the caller, once the set is closed.
func (p *parking) park(gs *groupServer, fd int, e handoffEntry) bool {
	pc := &parkedConn{fd: fd, gs: gs, entry: e}
	if limit := parkIdleLimit(gs); limit > 0 {
		pc.until = time.Now().Add(limit)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.seq++
	pc.seq = p.seq
	// Level-triggered: a request that arrived while the connection was
	// on its way makes it ready at once. One-shot: it is woken once.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd), Pad: int32(pc.seq)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return false
	}
	p.conns[fd] = pc
	gs.tracker.counts.parked(gs.cfg.Mode, 1)
	if !pc.until.IsZero() {
		q := p.queues[gs]
		p.queues[gs] = append(q, pc)
		if len(q) == 0 {
			p.armLocked()
		}
	}
	return true
}

// run waits for parked connections to turn readable, until the set's file
// is closed.
func (p *parking) run(rc interface {
	Read(func(fd uintptr) bool) error
}) {
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		err := rc.Read(func(uintptr) bool {
			var err error
			for n, err = unix.EpollWait(p.epfd, events, 0); err == unix.EINTR; {
				n, err = unix.EpollWait(p.epfd, events, 0)
			}
			// Nothing ready: wait for the set to be.
			return err == nil && n > 0
		})
		if err != nil {
			// Closed; or else, with nothing to wake them, parked
			// connections are closed rather than left waiting.
			p.close()
			return
		}
		for _, ev := range events[:n] {
			p.wake(int(ev.Fd), uint32(ev.Pad), ev.Events)
		}
	}
}

// wake takes the connection parked as seq on fd out of the set, readable
// with events, and serves it.
func (p *parking) wake(fd int, seq, events uint32) {
	p.mu.Lock()
	pc := p.conns[fd]
	if pc == nil || pc.seq != seq || p.closed {
		// Gone meanwhile (drained, closed, expired): not this
		// goroutine's any more. A connection parked since on the same
		// descriptor number has an event of its own coming.
		p.mu.Unlock()
		return
	}
	p.forgetLocked(pc)
	p.inflight.Add(1)
	p.mu.Unlock()
	defer p.inflight.Done()
	if events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		// Reset, or shut both ways: nothing to read, nobody to answer.
		unix.Close(fd)
		return
	}
	pc.serve()
}

// forgetLocked takes pc out of the set (its queue entry goes when it comes
// to the front). p.mu is held.
func (p *parking) forgetLocked(pc *parkedConn) {
	delete(p.conns, pc.fd)
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, pc.fd, nil)
	pc.gs.tracker.counts.parked(pc.gs.cfg.Mode, -1)
}

// serve hands pc to its group's server, as if just accepted; to the next
// worker instead if the group drains.
func (pc *parkedConn) serve() {
	gs := pc.gs
	if gs.resumed.isClosed() {
		pc.passOn()
		return
	}
	c, err := newTakenConn(pc.fd, pc.entry.laddr, pc.entry.raddr)
	if err != nil {
		gs.log.Warn("handoff: taking a connection over failed", "err", err)
		return
	}
	if !gs.resumed.deliver(c) {
		// The drain began after all: its heir takes it, if any.
		if m := gs.tracker.mover.Load(); m.ready() {
			handOver(c, m.heir, pc.entry)
			return
		}
		c.Close()
		return
	}
	// Counted once served, as its server counts it accepted: the
	// report's accepted connections are those less the handed over.
	gs.tracker.handedOver.Add(1)
}

// passOn hands a parked connection to the next worker, or closes it when
// there is none for its group: a drain without handoff closes idle
// connections.
func (pc *parkedConn) passOn() {
	if m := pc.gs.tracker.mover.Load(); m.ready() {
		m.heir.sendAndClose(pc.entry, pc.fd, fdCloser(pc.fd))
		return
	}
	unix.Close(pc.fd)
}

// fdCloser closes a descriptor that has no *os.File.
type fdCloser int

func (fd fdCloser) Close() error { return unix.Close(int(fd)) }

// armLocked sets the timer for the earliest limit. p.mu is held.
func (p *parking) armLocked() {
	var next time.Time
	for _, q := range p.queues {
		if len(q) > 0 && (next.IsZero() || q[0].until.Before(next)) {
			next = q[0].until
		}
	}
	if next.IsZero() {
		return
	}
	if p.timer == nil {
		p.timer = time.AfterFunc(time.Until(next), p.expire)
	} else {
		p.timer.Reset(time.Until(next))
	}
}

// expire closes the parked connections whose idle time ran out.
func (p *parking) expire() {
	now := time.Now()
	var expired []int
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	for gs, q := range p.queues {
		for len(q) > 0 && !q[0].until.After(now) {
			// One whose request has come meanwhile, its event not
			// yet handled, stays to be served.
			if pc := q[0]; p.conns[pc.fd] == pc && !readable(pc.fd) {
				p.forgetLocked(pc)
				expired = append(expired, pc.fd)
			}
			q[0] = nil
			q = q[1:]
		}
		if len(q) == 0 {
			delete(p.queues, gs)
		} else {
			p.queues[gs] = q
		}
	}
	p.armLocked()
	p.mu.Unlock()
	for _, fd := range expired {
		unix.Close(fd)
	}
}

// readable reports whether connection fd has bytes to read.
func readable(fd int) bool {
	var b [1]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err == nil && n > 0
}

// drain ends the set: every parked connection is handed to the next worker
// (or closed, for a group it does not take, or when there is none), and
// those woken meanwhile have reached their server, or been passed on, by
// the time it returns. It must run before the drain waits for the next
// worker to have taken what it was given.
func (p *parking) drain() {
	if p == nil {
		return
	}
	for _, pc := range p.end() {
		pc.passOn()
	}
	p.inflight.Wait()
}

// close ends the set, closing every parked connection.
func (p *parking) close() {
	if p == nil {
		return
	}
	for _, pc := range p.end() {
		unix.Close(pc.fd)
	}
	p.inflight.Wait()
}

// end closes the set and returns what was parked in it.
func (p *parking) end() []*parkedConn {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var parked []*parkedConn
	for _, pc := range p.conns {
		pc.gs.tracker.counts.parked(pc.gs.cfg.Mode, -1)
		parked = append(parked, pc)
	}
	p.conns, p.queues = nil, nil
	if p.timer != nil {
		p.timer.Stop()
	}
	// Under the lock: park and wake use the descriptor under it, and it
	// must not be reused by another file while they might.
	p.file.Close()
	p.mu.Unlock()
	return parked
}

package gozd

// FastCGI connections move between requests too (handoff.go): a web server
// that keeps its connections to gozd open (nginx's fastcgi_keep_conn) sends
// its next request on a connection the new worker serves.
//
// net/http/fcgi reads its records straight from the connection, one header
// and one body at a time, so between two records nothing is buffered in the
// process. A connection can move when it sits at a record boundary and every
// request begun on it (BEGIN_REQUEST read) has ended (END_REQUEST written).
// Records of an ended request may still follow — net/http/fcgi reads a
// POST's final empty FCGI_STDIN record only after it wrote END_REQUEST — and
// the new worker ignores them, as FastCGI ignores records of unknown request
// ids.

import (
	"encoding/binary"
	"net"
	"slices"
	"sync"
	"time"
)

// fcgiBeginRequest is the FastCGI record type FCGI_BEGIN_REQUEST.
const fcgiBeginRequest = 1

// fcgiMove follows a FastCGI connection's records and hands it over. What
// others need to know of the records (a record partly read, the requests
// open) is in the connection's status word, so that Read takes no lock:
// the ids of up to fcgiSlots open requests sit in it, more (a web server
// multiplexing) in more.
type fcgiMove struct {
	// Only Read uses these: where the records stand.
	hdr    [8]byte
	nhdr   int // bytes of the current record header read
	remain int // bytes of the current record's content and padding still unread

	// mu orders a move's read deadline against Read calling it off, and
	// guards the fields below.
	mu    sync.Mutex
	heir  *handoffSender
	group string
	more  []uint16 // ids of the requests begun and not ended beyond the slots
}

// The slots of open request ids in a FastCGI connection's status word.
const (
	fcgiSlotShift = 8  // where the first slot starts
	fcgiSlotBits  = 17 // a used flag and a 16-bit request id
	fcgiSlots     = 3
	fcgiSlotUsed  = 1 << 16
	fcgiSlotMask  = 1<<fcgiSlotBits - 1
	fcgiSlotsMask = (1<<(fcgiSlotBits*fcgiSlots) - 1) << fcgiSlotShift
)

func fcgiSlot(w uint64, i int) uint64 { return w >> (fcgiSlotShift + i*fcgiSlotBits) & fcgiSlotMask }

// fcgiBetween reports whether status word w is that of a connection between
// requests: at a record boundary, every request begun has ended.
func fcgiBetween(w uint64) bool {
	return w&(statusMidRecord|statusMoreOpen|fcgiSlotsMask) == 0
}

// withIdle sets the idle bit of w as its records say: a connection read or
// written up to the end of its requests is idle.
func withIdle(w uint64) uint64 {
	if fcgiBetween(w) {
		return w | statusIdle
	}
	return w &^ statusIdle
}

// recount tells the tracker's counts of a change of the status word.
func (c *fcgiConn) recount(old, new uint64) {
	if c.tracker != nil {
		c.tracker.counts.recount(trackedFCGI, old, new)
	}
}

// afterRead follows the records in b, just read, calls off a move that
// raced with them, and returns the status word before and after. It takes
// no lock unless a move is under way, or a web server multiplexes more than
// fcgiSlots requests.
func (c *fcgiConn) afterRead(b []byte) (old, new uint64) {
	m := &c.mv
	for len(b) > 0 {
		if m.remain > 0 {
			k := min(m.remain, len(b))
			m.remain -= k
			b = b[k:]
			continue
		}
		k := copy(m.hdr[m.nhdr:], b)
		m.nhdr += k
		b = b[k:]
		if m.nhdr < len(m.hdr) {
			break
		}
		m.nhdr = 0
		m.remain = int(binary.BigEndian.Uint16(m.hdr[4:6])) + int(m.hdr[6])
		if m.hdr[1] == fcgiBeginRequest {
			c.requestBegun(binary.BigEndian.Uint16(m.hdr[2:4]))
		}
	}
	for {
		// Bytes that came before the woken read of a move are this
		// worker's to serve: the move is called off, and tried again
		// when the connection is next between requests.
		old = c.status.Load()
		new = old &^ (statusMidRecord | statusMoving)
		if m.nhdr > 0 || m.remain > 0 {
			new |= statusMidRecord
		}
		new = withIdle(new)
		if new == old || c.status.CompareAndSwap(old, new) {
			break
		}
	}
	c.recount(old, new)
	if old&statusMoving != 0 {
		m.mu.Lock()
		// Unless a new move started meanwhile (the bytes were the
		// last records of an ended request), the read waits again.
		if c.status.Load()&statusMoving == 0 {
			c.Conn.SetReadDeadline(time.Time{})
		}
		m.mu.Unlock()
	}
	return old, new
}

// requestBegun notes a BEGIN_REQUEST record of request id.
func (c *fcgiConn) requestBegun(id uint16) {
	for {
		old := c.status.Load()
		i := 0
		for i < fcgiSlots && fcgiSlot(old, i)&fcgiSlotUsed != 0 {
			i++
		}
		if i == fcgiSlots {
			break
		}
		new := withIdle(old | uint64(fcgiSlotUsed|uint32(id))<<(fcgiSlotShift+i*fcgiSlotBits))
		if c.status.CompareAndSwap(old, new) {
			c.recount(old, new)
			return
		}
	}
	m := &c.mv
	m.mu.Lock()
	m.more = append(m.more, id)
	old, new := c.status.change(statusMoreOpen, statusIdle)
	m.mu.Unlock()
	c.recount(old, new)
}

// requestEnded notes the END_REQUEST record p, just written, and returns the
// status word before and after.
func (c *fcgiConn) requestEnded(p []byte) (old, new uint64) {
	id := uint64(binary.BigEndian.Uint16(p[2:4]))
	for {
		old = c.status.Load()
		new = old
		found := false
		for i := range fcgiSlots {
			if fcgiSlot(old, i) == fcgiSlotUsed|id {
				new &^= fcgiSlotMask << (fcgiSlotShift + i*fcgiSlotBits)
				found = true
				break
			}
		}
		if !found && old&statusMoreOpen != 0 {
			return c.moreEnded(uint16(id))
		}
		new = withIdle(new)
		if new == old || c.status.CompareAndSwap(old, new) {
			break
		}
	}
	c.recount(old, new)
	return old, new
}

// moreEnded is requestEnded for a request beyond the slots, or one not open.
func (c *fcgiConn) moreEnded(id uint16) (old, new uint64) {
	m := &c.mv
	m.mu.Lock()
	m.more = slices.DeleteFunc(m.more, func(x uint16) bool { return x == id })
	for {
		old = c.status.Load()
		new = old
		if len(m.more) == 0 {
			new &^= statusMoreOpen
		}
		new = withIdle(new)
		if new == old || c.status.CompareAndSwap(old, new) {
			break
		}
	}
	m.mu.Unlock()
	c.recount(old, new)
	return old, new
}

// startMove begins handing the connection to heir if it sits between
// requests: the read net/http/fcgi is blocked in wakes, it closes the
// connection, and Close passes the socket on.
func (c *fcgiConn) startMove(heir *handoffSender, group string) bool {
	m := &c.mv
	m.mu.Lock()
	defer m.mu.Unlock()
	if heir.dead.Load() {
		return false
	}
	for {
		old := c.status.Load()
		switch {
		case old&statusClosed != 0:
			return false
		case old&statusMoving != 0:
			return true
		case !fcgiBetween(old):
			return false
		}
		m.heir, m.group = heir, group
		if c.status.CompareAndSwap(old, old|statusMoving) {
			break
		}
	}
	c.Conn.SetReadDeadline(aLongTimeAgo)
	return true
}

// closeOrHandOver closes the connection, or passes a moving one on.
func (c *fcgiConn) closeOrHandOver() error {
	m := &c.mv
	m.mu.Lock()
	old, _ := c.status.change(statusClosed, 0)
	if old&statusClosed != 0 {
		m.mu.Unlock()
		return nil
	}
	move := old&statusMoving != 0 && fcgiBetween(old)
	heir, group := m.heir, m.group
	m.mu.Unlock()
	if !move {
		return c.Conn.Close()
	}
	handOver(c.Conn, heir, handoffEntry{kind: handoffFCGI, group: group, laddr: c.Conn.LocalAddr(), raddr: c.Conn.RemoteAddr()})
	return nil
}

// handOver passes c's socket to heir and closes c once it is sent, without
// waiting for that (the drain waits for the send: handoffSender.wait); if
// the handoff fails the socket is closed with it, as a drain without
// handoff would close it.
func handOver(c net.Conn, heir *handoffSender, e handoffEntry) {
	fd, err := connFD(c)
	if err != nil {
		c.Close()
		return
	}
	heir.sendAndClose(e, fd, c)
}

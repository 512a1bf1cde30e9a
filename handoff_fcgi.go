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

// fcgiMove follows a FastCGI connection's records and hands it over.
type fcgiMove struct {
	mu     sync.Mutex
	hdr    [8]byte
	nhdr   int      // bytes of the current record header read
	remain int      // bytes of the current record's content and padding still unread
	open   []uint16 // ids of the requests begun and not ended
	moving bool
	heir   *handoffSender
	group  string
	closed bool
}

// betweenLocked reports whether the connection sits between requests.
func (m *fcgiMove) betweenLocked() bool {
	return m.nhdr == 0 && m.remain == 0 && len(m.open) == 0
}

// afterRead follows the records in b, just read, calls off a move that
// raced with them, and reports whether the connection is between requests.
func (c *fcgiConn) afterRead(b []byte) bool {
	m := &c.mv
	m.mu.Lock()
	defer m.mu.Unlock()
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
			m.open = append(m.open, binary.BigEndian.Uint16(m.hdr[2:4]))
		}
	}
	if m.moving {
		// Bytes came before the woken read: they are this worker's
		// to serve; the move is tried again when the request ends.
		m.moving = false
		c.Conn.SetReadDeadline(time.Time{})
	}
	return m.betweenLocked()
}

// requestEnded notes the END_REQUEST record p, just written, and reports
// whether the connection is now between requests.
func (c *fcgiConn) requestEnded(p []byte) bool {
	m := &c.mv
	m.mu.Lock()
	defer m.mu.Unlock()
	if id := binary.BigEndian.Uint16(p[2:4]); slices.Contains(m.open, id) {
		m.open = slices.DeleteFunc(m.open, func(x uint16) bool { return x == id })
	}
	return m.betweenLocked()
}

// startMove begins handing the connection to heir if it sits between
// requests: the read net/http/fcgi is blocked in wakes, it closes the
// connection, and Close passes the socket on.
func (c *fcgiConn) startMove(heir *handoffSender, group string) bool {
	m := &c.mv
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || heir.dead.Load() {
		return false
	}
	if m.moving {
		return true
	}
	if !m.betweenLocked() {
		return false
	}
	m.moving, m.heir, m.group = true, heir, group
	c.Conn.SetReadDeadline(aLongTimeAgo)
	return true
}

// closeOrHandOver closes the connection, or passes a moving one on.
func (c *fcgiConn) closeOrHandOver() error {
	m := &c.mv
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	move := m.moving && m.betweenLocked()
	heir, group := m.heir, m.group
	m.mu.Unlock()
	if !move {
		return c.Conn.Close()
	}
	handOver(c.Conn, heir, handoffEntry{kind: handoffFCGI, group: group})
	return nil
}

// handOver passes c's socket to heir and closes c; if the handoff fails the
// socket is closed with it, as a drain without handoff would close it.
func handOver(c net.Conn, heir *handoffSender, e handoffEntry) {
	if fd, err := connFD(c); err == nil {
		heir.send(e, fd)
	}
	c.Close()
}

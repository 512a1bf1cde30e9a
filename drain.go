package gozd

import (
	"net"
	"sync"
)

// connTracker is the set of open connections of one group, each either busy
// or idle, that lets a group drain: once draining, idle connections are
// closed the moment they become idle, busy ones are left to finish, and done
// is closed when the set is empty.
//
// Connections accepted after draining started (the accept loop raced with
// the listener closing) are tracked and served like any other: they were
// taken off the shared backlog by this process, so no other process can
// answer them.
type connTracker struct {
	mu       sync.Mutex
	conns    map[net.Conn]bool // value: idle
	draining bool
	done     chan struct{} // closed once draining and conns is empty
}

func newConnTracker() *connTracker {
	return &connTracker{conns: make(map[net.Conn]bool), done: make(chan struct{})}
}

// add tracks a new connection as busy.
func (t *connTracker) add(c net.Conn) {
	t.mu.Lock()
	t.conns[c] = false
	t.mu.Unlock()
}

// setIdle records whether c is idle. An idle connection of a draining group
// is closed at once unless the protocol closes it itself (HTTP/2 sends
// GOAWAY when its last stream ends in a server with keep-alives disabled).
func (t *connTracker) setIdle(c net.Conn, idle, selfClosing bool) {
	t.mu.Lock()
	if _, ok := t.conns[c]; !ok {
		t.mu.Unlock()
		return
	}
	if idle && t.draining && !selfClosing {
		delete(t.conns, c)
		t.checkDoneLocked()
		t.mu.Unlock()
		c.Close()
		return
	}
	t.conns[c] = idle
	t.mu.Unlock()
}

// remove forgets c, which its owner has closed or is closing.
func (t *connTracker) remove(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
	t.checkDoneLocked()
}

// drain starts draining: idle connections are closed now, busy ones when
// they turn idle or are removed.
func (t *connTracker) drain() {
	t.closeWhere(func(idle bool) bool { return idle })
}

// closeAll closes every connection, busy or not: the hard stop.
func (t *connTracker) closeAll() {
	t.closeWhere(func(bool) bool { return true })
}

// closeWhere marks the group draining and closes the connections for which
// pick says so. Closing happens outside the lock: a TLS close writes an alert
// and may take a while.
func (t *connTracker) closeWhere(pick func(idle bool) bool) {
	t.mu.Lock()
	t.draining = true
	var closing []net.Conn
	for c, idle := range t.conns {
		if pick(idle) {
			delete(t.conns, c)
			closing = append(closing, c)
		}
	}
	t.checkDoneLocked()
	t.mu.Unlock()
	for _, c := range closing {
		c.Close()
	}
}

// count reports how many connections are open.
func (t *connTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

func (t *connTracker) checkDoneLocked() {
	if !t.draining || len(t.conns) > 0 {
		return
	}
	select {
	case <-t.done:
	default:
		close(t.done)
	}
}

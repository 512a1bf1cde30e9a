package gozd

// tcp connections move only when their handler asks (Conn.Handoff): gozd
// cannot know where a tcp protocol's message boundaries are, nor what the
// handler keeps about the session. The handler passes the connection, with
// its state, at a boundary it chooses; the new worker calls the group's
// handler with it, and Conn.Resumed gives that handler the state back.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// handoffTCP is the kind of a tcp connection passed by its handler; its
// entry's state starts with the 8-byte id the new worker acknowledges.
const handoffTCP handoffKind = 't'

// tcpResumed is what a tcp connection taken over from the previous worker
// came with.
type tcpResumed struct {
	state []byte
}

// Handoff implements Conn.Handoff: the descriptor goes with its state, and
// this worker keeps its own until the new worker acknowledges the
// connection; then it tells the new worker to go ahead and lets go. Without
// the acknowledgement in time it tells the new worker no, so a failure
// leaves the connection usable here and served nowhere else.
func (c *tcpConn) Handoff(state []byte) error {
	gs := c.gs
	if gs == nil || gs.handoff == nil {
		return fmt.Errorf("handoff: not a worker under a gozd master: %w", ErrNoHandoff)
	}
	name := gs.cfg.Name
	select {
	case <-c.ctx.Done():
	default:
		return fmt.Errorf("group %q: handoff: this worker is not draining: %w", name, ErrNoHandoff)
	}
	if len(state) > handoffMaxState {
		return fmt.Errorf("group %q: handoff: state of %d bytes, more than %d", name, len(state), handoffMaxState)
	}
	heir := gs.handoff.heir.Load()
	if heir == nil || !heir.takes(name, handoffTCP, gs.ln.Addr().String()) {
		return fmt.Errorf("group %q: handoff: no new worker serves the group: %w", name, ErrNoHandoff)
	}
	fd, err := connFD(c.Conn)
	if err != nil {
		return fmt.Errorf("group %q: handoff: %w", name, err)
	}
	id, taken := heir.expectAck()
	defer heir.forgetAck(id)
	e := handoffEntry{kind: handoffTCP, group: name, state: binary.BigEndian.AppendUint64(nil, id)}
	e.state = append(e.state, state...)
	if err := heir.send(e, fd); err != nil {
		return fmt.Errorf("group %q: handoff: %w: %w", name, err, ErrNoHandoff)
	}
	idBytes := e.state[:8]
	select {
	case ok := <-taken:
		if !ok {
			return fmt.Errorf("group %q: handoff: the new worker is gone: %w", name, ErrNoHandoff)
		}
		if err := heir.answer(true, idBytes); err != nil {
			// Gone, and its copy with it: this one serves on.
			return fmt.Errorf("group %q: handoff: the new worker is gone: %w", name, ErrNoHandoff)
		}
	case <-time.After(handoffTimeout):
		// Its ack may still come: tell it to close its copy.
		heir.answer(false, idBytes)
		return fmt.Errorf("group %q: handoff: the new worker did not take the connection within %s: %w", name, handoffTimeout, ErrNoHandoff)
	}
	// The new worker holds the socket: closing this descriptor sends
	// nothing to the peer.
	c.Close()
	gs.tracker.remove(c)
	return nil
}

// Resumed returns the state the previous worker's handler passed with
// Handoff, and true, for a connection taken over; nil and false for one
// this worker accepted.
func (c *tcpConn) Resumed() ([]byte, bool) {
	if c.resumed == nil {
		return nil, false
	}
	return c.resumed.state, true
}

// ackWaiters are those waiting for the other worker's word on a tcp
// connection, by id: in the old worker the Handoffs waiting for the new one
// to take their connection, in the new worker the taken-over connections
// waiting for the old one to let go.
type ackWaiters struct {
	mu         sync.Mutex
	next       atomic.Uint64
	waiting    map[uint64]chan bool
	gone       bool
	goneAnswer bool // what waiters get once gone
}

func (s *handoffSender) expectAck() (uint64, <-chan bool) {
	id := s.acks.next.Add(1)
	return id, s.acks.expectID(id)
}

func (s *handoffSender) forgetAck(id uint64) { s.acks.forget(id) }

// answer tells the new worker whether to serve the tcp connection id, with
// a write deadline of its own: the one a batch set may have passed.
func (s *handoffSender) answer(goAhead bool, id []byte) error {
	word := byte('N')
	if goAhead {
		word = 'Y'
	}
	s.conn.SetWriteDeadline(time.Now().Add(handoffTimeout))
	_, err := s.conn.Write(append([]byte{word}, id...))
	return err
}

// expectID returns the channel that resolve(id) answers on; at once false
// once release ran.
func (a *ackWaiters) expectID(id uint64) <-chan bool {
	ch := make(chan bool, 1)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gone {
		ch <- a.goneAnswer
		return ch
	}
	if a.waiting == nil {
		a.waiting = make(map[uint64]chan bool)
	}
	a.waiting[id] = ch
	return ch
}

func (a *ackWaiters) forget(id uint64) {
	a.mu.Lock()
	delete(a.waiting, id)
	a.mu.Unlock()
}

// resolve answers the one waiting for id, if any.
func (a *ackWaiters) resolve(id uint64, ok bool) {
	a.mu.Lock()
	if ch, found := a.waiting[id]; found {
		ch <- ok
		delete(a.waiting, id)
	}
	a.mu.Unlock()
}

// release answers every waiter, and every later one, with ok: the other
// side is gone.
func (a *ackWaiters) release(ok bool) {
	a.mu.Lock()
	a.gone, a.goneAnswer = true, ok
	for id, ch := range a.waiting {
		ch <- ok
		delete(a.waiting, id)
	}
	a.mu.Unlock()
}

// readAcks reads the new worker's acknowledgements until it is gone; then
// nothing more moves, and responses say "Connection: close" again.
func (s *handoffSender) readAcks() {
	buf := make([]byte, 64)
	for {
		n, err := s.conn.Read(buf)
		if err != nil || n == 0 {
			break
		}
		if n != 9 || buf[0] != 'A' {
			continue
		}
		s.acks.resolve(binary.BigEndian.Uint64(buf[1:9]), true)
	}
	if !s.dead.Swap(true) {
		s.log.Warn("the new worker is gone; connections are closed as they turn idle, responses say Connection: close")
	}
	s.acks.release(false)
}

// serveResumedTCP lets gs take over tcp connections: handler runs on each
// as on an accepted one.
func (gs *groupServer) serveResumedTCP(handler func(Conn), connCtx context.Context) {
	gs.resumed = newResumeListener(gs.ln.Addr(), nil) // closed when the group stops
	gs.runResumedTCP = func(c net.Conn, state []byte) {
		conn := &tcpConn{Conn: c, ctx: connCtx, gs: gs, resumed: &tcpResumed{state: state}}
		gs.tracker.add(conn)
		go gs.handleTCP(conn, handler)
	}
}

// resumeTCP takes over a tcp connection a handler of the previous worker
// passed on: it acknowledges it, and runs the group's handler on it once the
// previous worker says it let go (or is gone); told no, or never told, it
// closes its copy, which the previous worker still serves.
func (gs *groupServer) resumeTCP(c net.Conn, state []byte, inbox net.Conn, goAheads *ackWaiters) error {
	if len(state) < 8 {
		c.Close()
		return errors.New("tcp entry without an id")
	}
	if gs.runResumedTCP == nil || gs.resumed.isClosed() {
		c.Close()
		return fmt.Errorf("group %q does not serve", gs.cfg.Name)
	}
	id := binary.BigEndian.Uint64(state[:8])
	goAhead := goAheads.expectID(id)
	if _, err := inbox.Write(append([]byte{'A'}, state[:8]...)); err != nil {
		goAheads.forget(id)
		c.Close()
		return err
	}
	// Not in the takeover loop: the go comes over the inbox that loop's
	// reader reads, after this ack.
	go func() {
		select {
		case ok := <-goAhead:
			if ok {
				gs.runResumedTCP(c, state[8:])
				return
			}
		case <-time.After(handoffTimeout + 10*time.Second):
			goAheads.forget(id)
		}
		c.Close()
	}()
	return nil
}

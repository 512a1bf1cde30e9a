package gozd

// Connection handoff: at a reload the old worker passes the connections it
// would otherwise close (HTTP/1.x connections idle between requests,
// FastCGI kept connections between requests, tcp sessions whose handler
// calls Conn.Handoff) to the new worker, which serves their next request as
// if it had just accepted them. A socket
// passed with SCM_RIGHTS is the same socket: the peer, the bytes the
// kernel holds unread, the address all stay; the client sees nothing.
//
// The pipe between the two workers is a SOCK_SEQPACKET socket pair the
// master makes for each new worker (handoff_master.go). The new worker
// inherits one end, its inbox, and writes a greeting on it naming the
// groups it takes connections for. The master passes the other end to the
// old worker with its "drain" order. Every message after the greeting
// carries up to handoffMaxFDs descriptors, each with an entry naming its
// kind and group:
//
//	greeting  'G' then JSON: [{"group":..., "kind":..., "addr":...,
//	          "addrs":true}, ...]
//	batch     'C' then per descriptor: kind (1 byte), len(group) (1 byte),
//	          group, len(state) (4 bytes, big endian), state
//	          'D' (to a worker whose greeting says "addrs"): the same, each
//	          entry followed by the connection's local and remote address
//	          (handoff_conn.go), so the new worker need not ask the kernel
//	ack       'A' then the 8-byte id that starts a tcp entry's state: the
//	          new worker holds the connection (new worker to old)
//	go        'Y' or 'N' then the same id: the old worker let go of the
//	          connection, so the new one runs its handler; or it timed out
//	          waiting for the ack and serves on, so the new one closes its
//	          copy (old worker to new). Exactly one worker serves it.
//
// Whatever cannot move falls back to what a drain did before: a response
// with "Connection: close", an idle connection closed.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	handoffMaxFDs   = 253       // SCM_MAX_FD: the most descriptors one message carries
	handoffMaxState = 64 << 10  // state one handed-over tcp connection may carry
	handoffMsgMax   = 160 << 10 // bytes of one message, below the socket's default send buffer
	greetingTimeout = 2 * time.Second
	handoffTimeout  = 5 * time.Second // a batch the new worker does not take by then falls back

	handoffBatchWait = time.Millisecond // for more connections to fill a batch
)

// handoffKind is what a handed-over descriptor is, and so how the new worker
// serves it.
type handoffKind byte

const (
	handoffHTTP handoffKind = 'h' // an HTTP/1.x connection between requests
	handoffFCGI handoffKind = 'f' // a FastCGI connection between requests
)

// aLongTimeAgo is a read deadline that wakes a blocked Read at once.
var aLongTimeAgo = time.Unix(1, 0)

// greetingEntry names a group a worker takes connections for; addr is where
// the group listens, so a group that moved elsewhere takes none.
type greetingEntry struct {
	Group string      `json:"group"`
	Kind  handoffKind `json:"kind"`
	Addr  string      `json:"addr"`
	Addrs bool        `json:"addrs,omitempty"` // takes 'D' batches
}

// handoffKindOf is the kind of connection gs can hand over and take over,
// and false for a group whose connections cannot move (TLS).
func handoffKindOf(gs *groupServer) (handoffKind, bool) {
	if len(gs.cfg.Name) > 255 {
		return 0, false // the name does not fit a batch entry
	}
	switch {
	case gs.cfg.Mode == ModeHTTP:
		return handoffHTTP, true
	case gs.cfg.Mode == ModeFCGI:
		return handoffFCGI, true
	case gs.cfg.Mode == ModeTCP && gs.server == nil:
		// A server value (servers.go) serves its own connections:
		// none is resumed into it.
		return handoffTCP, true
	}
	return 0, false
}

// daemonHandoff is a worker's part of the handoff: where connections come
// from, and where they go once it drains.
type daemonHandoff struct {
	inbox     *net.UnixConn                 // from the previous worker; nil outside a master
	inboxDone chan struct{}                 // closed once the previous worker is gone
	heir      atomic.Pointer[handoffSender] // to the next worker, once draining
	goAheads  ackWaiters                    // tcp connections taken over, waiting for the previous worker's go
	park      *parking                      // idle connections taken over, until their first byte (handoff_park.go); nil if it could not be made
}

// openInbox takes over the inherited inbox descriptor, and starts taking
// connections on it once every group serves.
func (d *Daemon) openInbox(fd int) error {
	if fd <= 0 {
		return nil
	}
	f := os.NewFile(uintptr(fd), "gozd-inbox")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("handoff socket from the master: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return fmt.Errorf("handoff socket from the master is a %T", c)
	}
	d.handoff.inbox = uc
	d.handoff.inboxDone = make(chan struct{})
	if d.handoff.park, err = newParking(); err != nil {
		// Connections taken over are then served at once.
		d.log.Warn("handoff: no epoll set to park idle connections in", "err", err)
	}
	go d.receiveHandoffs()
	return nil
}

// logHandoffs tells the operator what this worker's drain handed to the
// next worker.
func (d *Daemon) logHandoffs(log *slog.Logger) {
	s := d.handoff.heir.Load()
	if s == nil {
		return
	}
	args := []any{"connections", s.moved.Load(), "in", time.Since(s.began).Round(time.Microsecond)}
	if n := s.failed.Load(); n > 0 {
		args = append(args, "failed", n)
	}
	log.Info("handed connections to the new worker", args...)
}

// waitPredecessor keeps a worker that drained into a next one alive, at
// most max, while the worker before it (in a reload during a reload) may
// still hand it connections to pass on.
func (d *Daemon) waitPredecessor(max time.Duration) {
	if d.handoff.inboxDone == nil || d.handoff.heir.Load() == nil {
		return
	}
	select {
	case <-d.handoff.inboxDone:
	case <-time.After(max):
	}
}

// receiveHandoffs greets the previous worker once every group serves, then
// serves the connections it hands over until it is gone.
func (d *Daemon) receiveHandoffs() {
	inbox := d.handoff.inbox
	var batches sync.WaitGroup
	queue := make(chan takeoverBatch, 1024)
	batches.Go(func() {
		var taken int
		var first time.Time
		for b := range queue {
			if taken == 0 {
				first = b.received
			}
			for i, e := range b.entries {
				d.takeOver(e, b.fds[i])
			}
			taken += len(b.entries)
		}
		if taken > 0 {
			// The other side of the old worker's "handed connections":
			// from its first batch to the last connection served here.
			d.log.Info("took connections over from the previous worker", "connections", taken, "in", time.Since(first).Round(time.Microsecond))
		}
	})
	defer close(d.handoff.inboxDone)
	defer inbox.Close()
	defer batches.Wait() // tcp takeovers acknowledge on inbox
	defer close(queue)
	select {
	case <-d.Ready():
	case <-d.Draining():
		return
	}
	var greeting []greetingEntry
	d.mu.Lock()
	for _, gs := range d.groups {
		if kind, ok := handoffKindOf(gs); ok {
			greeting = append(greeting, greetingEntry{Group: gs.cfg.Name, Kind: kind, Addr: gs.ln.Addr().String(), Addrs: true})
		}
	}
	d.mu.Unlock()
	b, _ := json.Marshal(greeting)
	if _, err := inbox.Write(append([]byte{'G'}, b...)); err != nil {
		// Nobody will hand anything over (no previous worker).
		return
	}
	// The previous worker gone, no tcp connection it passed is its any
	// more: those waiting for its go run.
	defer d.handoff.goAheads.release(true)
	buf := make([]byte, handoffMsgMax+1)
	oob := make([]byte, unix.CmsgSpace(handoffMaxFDs*4))
	for {
		n, oobn, flags, _, err := inbox.ReadMsgUnix(buf, oob)
		if err != nil || (n == 0 && oobn == 0) {
			return
		}
		if n == 9 && oobn == 0 && (buf[0] == 'Y' || buf[0] == 'N') {
			d.handoff.goAheads.resolve(binary.BigEndian.Uint64(buf[1:9]), buf[0] == 'Y')
			continue
		}
		fds, ferr := parseRights(oob[:oobn])
		if flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 || ferr != nil {
			// Out of descriptors, most likely: those that came are
			// closed, which cuts them as a drain without handoff would.
			d.log.Error("handoff: a batch of connections was cut short; raise maxfds", "err", ferr, "fds", len(fds))
			closeFDs(fds)
			continue
		}
		entries, err := parseBatch(buf[:n], len(fds))
		if err != nil {
			d.log.Error("handoff: bad batch from the previous worker", "err", err)
			closeFDs(fds)
			continue
		}
		// Taking a batch over costs a few system calls a descriptor:
		// one goroutine does it while this one reads ahead, so the
		// previous worker, its sends done, need not wait for it, and
		// keeps a core to hand the rest over.
		queue <- takeoverBatch{entries, fds, time.Now()}
	}
}

type takeoverBatch struct {
	entries  []handoffEntry
	fds      []int
	received time.Time
}

// handoffEntry is one descriptor's entry in a batch.
type handoffEntry struct {
	kind         handoffKind
	group        string
	state        []byte
	laddr, raddr net.Addr // in 'D' batches
}

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_RIGHTS {
			r, err := unix.ParseUnixRights(&m)
			if err != nil {
				closeFDs(fds)
				return nil, err
			}
			fds = append(fds, r...)
		}
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// appendEntry adds one descriptor's entry to a batch message, b[0] its
// type.
func appendEntry(b []byte, e handoffEntry) []byte {
	addrs := b[0] == 'D'
	b = append(b, byte(e.kind), byte(len(e.group)))
	b = append(b, e.group...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.state)))
	b = append(b, e.state...)
	if addrs {
		b = appendAddr(b, e.laddr)
		b = appendAddr(b, e.raddr)
	}
	return b
}

// entrySize is at most what appendEntry adds for e.
func entrySize(e handoffEntry) int {
	return 6 + len(e.group) + len(e.state) + 2*(2+255)
}

// parseBatch reads a batch message that came with nfds descriptors.
func parseBatch(b []byte, nfds int) ([]handoffEntry, error) {
	if len(b) == 0 || (b[0] != 'C' && b[0] != 'D') {
		return nil, fmt.Errorf("message of %d bytes is no batch", len(b))
	}
	addrs := b[0] == 'D'
	b = b[1:]
	var entries []handoffEntry
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.New("truncated entry")
		}
		end := 2 + int(b[1]) // an int: 2+b[1] as a byte wraps around
		if len(b) < end+4 {
			return nil, errors.New("truncated entry")
		}
		e := handoffEntry{kind: handoffKind(b[0]), group: string(b[2:end])}
		b = b[end:]
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			return nil, errors.New("truncated state")
		}
		e.state = bytes.Clone(b[:n])
		b = b[n:]
		if addrs {
			var err error
			if e.laddr, b, err = parseAddr(b); err != nil {
				return nil, err
			}
			if e.raddr, b, err = parseAddr(b); err != nil {
				return nil, err
			}
		}
		entries = append(entries, e)
	}
	if len(entries) != nfds {
		return nil, fmt.Errorf("%d entries for %d descriptors", len(entries), nfds)
	}
	return entries, nil
}

// takeOver serves a connection the previous worker handed over (an idle
// HTTP/1.x or FastCGI one once its next request comes: handoff_park.go),
// or, if this worker drains already, hands it on to the next one.
func (d *Daemon) takeOver(e handoffEntry, fd int) {
	var gs *groupServer
	d.mu.Lock()
	for _, g := range d.groups {
		if g.cfg.Name == e.group {
			gs = g
		}
	}
	d.mu.Unlock()
	if gs == nil {
		unix.Close(fd)
		return
	}
	if e.kind == handoffTCP {
		f := os.NewFile(uintptr(fd), "handed-over connection")
		c, err := net.FileConn(f)
		f.Close()
		if err == nil {
			err = gs.resumeTCP(c, e.state, d.handoff.inbox, &d.handoff.goAheads)
		}
		if err != nil {
			d.log.Warn("handoff: taking a tcp connection over failed", "group", e.group, "err", err)
			return
		}
		gs.tracker.handedOver.Add(1)
		return
	}
	if heir := d.handoff.heir.Load(); heir != nil && gs.resumed.isClosed() {
		// Waited for: this may come after the drain's own wait.
		heir.send(e, fd)
		unix.Close(fd)
		return
	}
	if gs.resumed != nil && d.handoff.park != nil && d.handoff.park.park(gs, fd, e) {
		return // served on its first byte, and counted then
	}
	c, err := newTakenConn(fd, e.laddr, e.raddr)
	if err != nil {
		d.log.Warn("handoff: taking a connection over failed", "group", e.group, "err", err)
		return
	}
	if !gs.resumed.deliver(c) {
		c.Close()
		return
	}
	gs.tracker.handedOver.Add(1)
}

// controlReader reads the master's orders, keeping the descriptors that
// come with them (the heir's inbox, with "drain").
type controlReader struct {
	conn net.Conn
	mu   sync.Mutex
	fds  []int
}

func (r *controlReader) Read(p []byte) (int, error) {
	uc, ok := r.conn.(*net.UnixConn)
	if !ok {
		return r.conn.Read(p)
	}
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := uc.ReadMsgUnix(p, oob)
	if fds, _ := parseRights(oob[:oobn]); len(fds) > 0 {
		r.mu.Lock()
		r.fds = append(r.fds, fds...)
		r.mu.Unlock()
	}
	if n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// takeFD returns the last descriptor that came with an order, or -1.
func (r *controlReader) takeFD() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.fds) == 0 {
		return -1
	}
	fd := r.fds[len(r.fds)-1]
	closeFDs(r.fds[:len(r.fds)-1])
	r.fds = nil
	return fd
}

// setHeir takes the socket to the next worker, passed with the "drain"
// order, reads its greeting, and lets every group whose connections that
// worker takes hand them over as it drains. Without one (fd < 0, or the
// new worker gone) the drain closes connections as before.
func (d *Daemon) setHeir(fd int) {
	if fd < 0 {
		return
	}
	s, err := newHandoffSender(fd, d.log)
	if err != nil {
		d.log.Warn("handoff: no connection moves to the new worker", "err", err)
		return
	}
	d.handoff.heir.Store(s)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, gs := range d.groups {
		kind, ok := handoffKindOf(gs)
		if !ok {
			// Nothing moves, but there is a new worker: a reload, not
			// a stop (see keepsIdleOpen).
			gs.tracker.setMover(nil, s)
			continue
		}
		if !s.takes(gs.cfg.Name, kind, gs.ln.Addr().String()) {
			continue
		}
		switch kind {
		case handoffHTTP:
			gs.tracker.setMover(func(c net.Conn) bool {
				hc := asHTTPConn(c)
				return hc != nil && hc.startMove(s, gs.cfg.Name)
			}, s)
		case handoffFCGI:
			gs.tracker.setMover(func(c net.Conn) bool {
				fc, ok := c.(*fcgiConn)
				return ok && fc.startMove(s, gs.cfg.Name)
			}, s)
		}
	}
}

// handoffSender hands connections to the next worker in batches.
type handoffSender struct {
	conn    *net.UnixConn
	log     *slog.Logger
	accepts map[string]greetingEntry
	addrs   bool // the new worker takes 'D' batches
	queue   chan *handoffItem
	dead    atomic.Bool    // the new worker is gone or stuck: nothing more moves
	acks    ackWaiters     // tcp Handoffs waiting for the new worker to take their connection
	pending sync.WaitGroup // connections given to sendAndClose, until written to the new worker

	moved, failed atomic.Int64 // connections handed over, and those that could not be
	began         time.Time
}

// handoffItem is one descriptor to send: its caller waits on done (send),
// or leaves closing it to the sender (sendAndClose).
type handoffItem struct {
	entry  handoffEntry
	fd     int
	done   chan error
	closer io.Closer
}

// newHandoffSender reads the greeting on fd, the socket to the next worker,
// and starts sending.
func newHandoffSender(fd int, log *slog.Logger) (*handoffSender, error) {
	f := os.NewFile(uintptr(fd), "gozd-heir")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("socket to the new worker is a %T", c)
	}
	uc.SetReadDeadline(time.Now().Add(greetingTimeout))
	buf := make([]byte, 64<<10)
	n, err := uc.Read(buf)
	uc.SetReadDeadline(time.Time{})
	if err != nil || n == 0 || buf[0] != 'G' {
		uc.Close()
		if err == nil {
			err = errors.New("no greeting")
		}
		return nil, fmt.Errorf("new worker's greeting: %w", err)
	}
	var greeting []greetingEntry
	if err := json.Unmarshal(buf[1:n], &greeting); err != nil {
		uc.Close()
		return nil, fmt.Errorf("new worker's greeting: %w", err)
	}
	s := &handoffSender{conn: uc, log: log, accepts: make(map[string]greetingEntry), queue: make(chan *handoffItem, handoffMaxFDs), began: time.Now()}
	s.addrs = len(greeting) > 0
	for _, e := range greeting {
		s.accepts[e.Group] = e
		s.addrs = s.addrs && e.Addrs
	}
	go s.run()
	go s.readAcks()
	return s, nil
}

// takes reports whether the next worker takes connections of the group.
func (s *handoffSender) takes(group string, kind handoffKind, addr string) bool {
	e, ok := s.accepts[group]
	return ok && e.Kind == kind && e.Addr == addr && !s.dead.Load()
}

// send hands fd over; it returns once the new worker's socket took it, or
// with the error that kept it from moving. fd stays the caller's to close.
func (s *handoffSender) send(e handoffEntry, fd int) error {
	if s.dead.Load() {
		return ErrNoHandoff
	}
	it := &handoffItem{entry: e, fd: fd, done: make(chan error, 1)}
	s.queue <- it
	return <-it.done
}

// sendAndClose hands fd over and closes c, which fd belongs to, once it is
// sent, or at once if it cannot be. It does not wait: the connection is
// the sender's now, and the connections a drain moves go over in parallel
// with the next ones waking up. wait waits until they are sent, so a call
// must come before the wait starts: from a connection the drain still
// tracks.
func (s *handoffSender) sendAndClose(e handoffEntry, fd int, c io.Closer) {
	if s.dead.Load() {
		c.Close()
		return
	}
	s.pending.Add(1)
	s.queue <- &handoffItem{entry: e, fd: fd, closer: c}
}

// wait waits until the connections given to sendAndClose are sent (or
// failed to be), or ctx is done. Their closing is not waited for: a sent
// socket is the new worker's as soon as it sits in its inbox, which keeps it
// open whatever becomes of this process, and the exit that follows a drain
// closes the rest at a fraction of the cost (10,000 connections: epoll_ctl
// and close for each took some 40% of the old worker's CPU).
func (s *handoffSender) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		s.pending.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// run writes what is queued, as many descriptors a message as fit.
func (s *handoffSender) run() {
	var carry *handoffItem
	msg := make([]byte, 0, handoffMsgMax)
	msgType := byte('C')
	if s.addrs {
		msgType = 'D'
	}
	// Sent connections are closed once the queue runs dry, not beside
	// the next batch: during a drain's flood the old worker's CPU goes
	// to waking and sending the rest (closing 10,000 took a quarter of
	// it), and if the flood ends the drain, the exit closes them in the
	// kernel for less. A worker that stays on for busy connections
	// closes them at the first pause, so the new worker's closes take
	// effect.
	var sent []io.Closer
	for {
		batch := []*handoffItem{carry}
		if carry == nil {
			select {
			case batch[0] = <-s.queue:
			default:
				if len(sent) > 0 {
					go closeAll(sent)
					sent = nil
				}
				batch[0] = <-s.queue
			}
		}
		carry = nil
		msg = appendEntry(append(msg[:0], msgType), batch[0].entry)
		// Connections woken together by the drain come over a few
		// milliseconds: waiting a moment fills a batch, where every
		// message costs a system call and a place in the new worker's
		// queue of unread messages (net.unix.max_dgram_qlen, often 10).
		fill := time.NewTimer(handoffBatchWait)
	more:
		for len(batch) < handoffMaxFDs {
			select {
			case it := <-s.queue:
				if len(msg)+entrySize(it.entry) > handoffMsgMax {
					carry = it
					break more
				}
				msg = appendEntry(msg, it.entry)
				batch = append(batch, it)
			case <-fill.C:
				break more
			}
		}
		fill.Stop()
		err := s.write(msg, batch)
		if err == nil {
			s.moved.Add(int64(len(batch)))
		} else {
			s.failed.Add(int64(len(batch)))
		}
		n := len(sent)
		for _, it := range batch {
			if it.done != nil {
				it.done <- err
			} else {
				sent = append(sent, it.closer)
			}
		}
		s.pending.Add(n - len(sent))
	}
}

// closeAll closes connections that were sent (or failed to be).
func closeAll(closing []io.Closer) {
	for _, c := range closing {
		c.Close()
	}
}

func (s *handoffSender) write(msg []byte, batch []*handoffItem) error {
	if s.dead.Load() {
		return ErrNoHandoff
	}
	fds := make([]int, len(batch))
	for i, it := range batch {
		fds[i] = it.fd
	}
	s.conn.SetWriteDeadline(time.Now().Add(handoffTimeout))
	_, _, err := s.conn.WriteMsgUnix(msg, unix.UnixRights(fds...), nil)
	if err != nil {
		if !s.dead.Swap(true) {
			s.log.Warn("handoff to the new worker failed; the remaining connections are closed as they turn idle", "err", err)
		}
		return fmt.Errorf("handing %d connections over: %w", len(batch), err)
	}
	return nil
}

// connFD returns c's descriptor, to pass on before c is closed: it stays
// valid until then, as only the caller closes c. Not a duplicate, which
// would cost two system calls a connection; nor (*os.File).Fd, which would
// switch the socket to blocking mode (see dupListenerFD).
func connFD(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// resumeListener hands the group's server the connections taken over from
// the previous worker, as if it had accepted them.
type resumeListener struct {
	addr  net.Addr
	wrap  func(net.Conn) net.Conn
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newResumeListener(addr net.Addr, wrap func(net.Conn) net.Conn) *resumeListener {
	return &resumeListener{addr: addr, wrap: wrap, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *resumeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return l.wrap(c), nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *resumeListener) Close() error {
	if l != nil {
		l.once.Do(func() { close(l.done) })
	}
	return nil
}

func (l *resumeListener) Addr() net.Addr { return l.addr }

// deliver passes c to the group's server; false if the listener is closed.
func (l *resumeListener) deliver(c net.Conn) bool {
	if l == nil {
		return false
	}
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *resumeListener) isClosed() bool {
	if l == nil {
		return true
	}
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// serveResumed starts serving the connections handed over to gs; wg is done
// when that stops. Only a worker with an inbox has any.
func (gs *groupServer) serveResumed(d *Daemon, handler any, connCtx context.Context, wg *sync.WaitGroup) {
	if d.handoff.inbox == nil {
		return
	}
	if _, ok := handoffKindOf(gs); !ok {
		return
	}
	switch gs.cfg.Mode {
	case ModeHTTP:
		srv := gs.http
		gs.resumed = newResumeListener(gs.ln.Addr(), func(c net.Conn) net.Conn { return resumedHTTPConn(c, srv) })
		wg.Go(func() { gs.logAcceptEnd(gs.http.Serve(gs.resumed)) })
	case ModeTCP:
		gs.serveResumedTCP(handler.(func(Conn)), connCtx)
	case ModeFCGI:
		gs.resumed = newResumeListener(gs.ln.Addr(), func(c net.Conn) net.Conn { return c })
		wg.Go(func() {
			gs.logAcceptEnd(fcgi.Serve(&fcgiListener{Listener: gs.resumed, tracker: gs.tracker}, gs.fcgiHandler(handler)))
		})
	}
}

// resumedHTTPConn wraps a connection taken over for srv. Until its first
// byte it waits as long as srv lets an idle connection wait (net/http's
// rule: IdleTimeout, else ReadTimeout), not ReadHeaderTimeout; with neither
// set it is read as a new connection is.
func resumedHTTPConn(c net.Conn, srv *http.Server) net.Conn {
	hc := &httpConn{Conn: c}
	idle := srv.IdleTimeout
	if idle == 0 {
		idle = srv.ReadTimeout
	}
	if idle <= 0 {
		return hc
	}
	hc.mv.resumedIdle = idle
	hc.mv.resumed.Store(true)
	return resumedConn{hc}
}

// connMove is an HTTP/1.x connection's part in a handoff.
type connMove struct {
	moving atomic.Bool // handing over: the blocked read is woken, Close passes the socket on

	// resumed: taken over from the previous worker, nothing read yet; it
	// waits for its first byte resumedIdle (resumedHTTPConn).
	resumed atomic.Bool

	mu    sync.Mutex
	heir  *handoffSender
	group string
	// deadline is the read deadline net/http asked for last while the
	// connection, taken over, waited for its first byte, in Unix
	// nanoseconds (0: none): carried over to its first request
	// (resumedConn, afterRead).
	deadline    int64
	deadlineSet time.Time // when net/http set the deadline, while resumed
	closed      bool
	resumedIdle time.Duration
}

func deadlineNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// startMove begins handing the connection to heir, if it sits between
// requests with nothing of a next one read: its blocked read wakes, net/http
// closes it, and Close passes the socket on. It reports whether the move
// started.
func (c *httpConn) startMove(heir *handoffSender, group string) bool {
	c.mv.mu.Lock()
	defer c.mv.mu.Unlock()
	if c.mv.closed || c.status.Load()&statusBusy != 0 || heir.dead.Load() || c.h2c.Load() {
		// An h2c connection speaks HTTP/2: the new worker would read
		// its frames as an HTTP/1.x request.
		return false
	}
	if c.mv.moving.Load() {
		return true
	}
	c.mv.moving.Store(true)
	if c.status.Load()&statusRead != 0 {
		c.mv.moving.Store(false)
		return false
	}
	c.mv.heir, c.mv.group = heir, group
	c.Conn.SetReadDeadline(aLongTimeAgo)
	return true
}

// afterRead completes a Read that returned bytes while the connection moves
// or was taken over: a move that raced with bytes arriving is called off
// (the request is served here, the move tried again when it is done), and
// the deadlines of a taken-over connection switch from idle to reading a
// request.
func (c *httpConn) afterRead() {
	c.mv.mu.Lock()
	defer c.mv.mu.Unlock()
	if c.mv.resumed.Load() {
		c.mv.resumed.Store(false)
		if d := c.mv.deadline; d != 0 {
			c.Conn.SetReadDeadline(time.Now().Add(time.Duration(d - c.mv.deadlineSet.UnixNano())))
		}
	}
	if c.mv.moving.Load() {
		// Bytes of a next request have arrived: they get what the drain
		// gives a request arriving on a connection it would close
		// (closeIfIdle), ReadHeaderTimeout, until net/http sets the
		// header's own deadline.
		c.mv.moving.Store(false)
		c.Conn.SetReadDeadline(time.Now().Add(DefaultReadHeaderTimeout))
	}
}

// resumedConn is an HTTP/1.x connection taken over from the previous worker
// (resumedHTTPConn): until its first byte, the read deadline net/http sets
// for a request header is stretched to the idle wait, and afterRead puts it
// back when the byte comes. Connections this worker accepted are plain
// httpConns, whose deadlines go straight to the socket: net/http sets one
// four to six times per keep-alive request.
type resumedConn struct{ *httpConn }

func (c resumedConn) SetReadDeadline(t time.Time) error {
	if !c.mv.resumed.Load() {
		return c.Conn.SetReadDeadline(t)
	}
	c.mv.mu.Lock()
	defer c.mv.mu.Unlock()
	c.mv.deadline = deadlineNanos(t)
	if !c.mv.resumed.Load() || t.IsZero() {
		return c.Conn.SetReadDeadline(t)
	}
	// Only a taken-over connection needs to know for how long the
	// deadline was meant (afterRead): reading the clock at every call
	// cost more than the rest of gozd's part of a request.
	now := time.Now()
	c.mv.deadlineSet = now
	return c.Conn.SetReadDeadline(now.Add(c.mv.resumedIdle))
}

func (c resumedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// Close passes a moving connection to the next worker instead of closing
// it; if that fails the connection is closed, as a drain without handoff
// would close it.
func (c *httpConn) Close() error {
	c.mv.mu.Lock()
	if c.mv.closed {
		c.mv.mu.Unlock()
		return nil
	}
	c.mv.closed = true
	move := c.mv.moving.Load() && c.status.Load()&statusRead == 0
	heir, group := c.mv.heir, c.mv.group
	c.mv.mu.Unlock()
	if !move {
		return c.Conn.Close()
	}
	handOver(c.Conn, heir, handoffEntry{kind: handoffHTTP, group: group, laddr: c.Conn.LocalAddr(), raddr: c.Conn.RemoteAddr()})
	return nil
}

// connMover moves a draining group's connections to the next worker.
type connMover struct {
	move func(net.Conn) bool // starts moving c; false if it cannot move (now); nil for a group whose connections cannot move
	heir *handoffSender
}

func (t *connTracker) setMover(move func(net.Conn) bool, heir *handoffSender) {
	t.mover.Store(&connMover{move: move, heir: heir})
}

// tryMove starts moving c to the next worker, if there is one that takes
// the group's connections and c can move now.
func (t *connTracker) tryMove(c net.Conn) bool {
	m := t.mover.Load()
	return m.ready() && m.move(c)
}

// moveAll starts moving conns to the next worker, outside the tracker's
// lock: the connections woken for the move close (and leave the tracker)
// meanwhile. One that cannot move now gets the drain's other treatment,
// as closeIdleLocked gives it.
func (t *connTracker) moveAll(conns []net.Conn) {
	var closing []net.Conn
	for _, c := range conns {
		if t.tryMove(c) {
			continue
		}
		t.mu.Lock()
		if st, ok := t.conns[c]; ok && isIdle(c, st) && t.closeIdleLocked(c) {
			closing = append(closing, c)
		}
		t.checkDoneLocked()
		t.mu.Unlock()
	}
	closeConns(closing)
}

// moves reports whether connections of the group move to the next worker
// (and so responses need not say "Connection: close").
func (t *connTracker) moves() bool { return t.mover.Load().ready() }

// ready reports whether m can move connections: there is one, for a group
// whose connections can move, and its heir is alive.
func (m *connMover) ready() bool {
	return m != nil && m.move != nil && !m.heir.dead.Load()
}

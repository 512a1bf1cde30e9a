package gozd

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// How long an idle HTTP connection of a draining group stays open before it
// is closed. HTTP/2: the server may still be flushing the frames that ended
// its last stream when it reports the connection idle, and a client that
// opens a new stream meanwhile is answered with GOAWAY; net/http's own
// HTTP/2 shutdown waits as long. HTTP/1: the client's next request may
// already sit in net/http's buffers (its background read takes the first
// bytes while the handler finishes); in that moment it goes on to be served,
// with Connection: close, instead of being cut.
const (
	h2Linger = time.Second
	h1Linger = 50 * time.Millisecond
)

// connTracker is the set of open connections of one group, each either busy
// or idle, that lets a group drain: once draining, idle connections are
// closed the moment they become idle, busy ones are left to finish, and done
// is closed when the set is empty and no more connections can arrive.
//
// Connections accepted after draining started (the accept loop raced with
// the listener closing) are tracked and served like any other: they were
// taken off the shared backlog by this process, so no other process can
// answer them. That is why done waits for seal, which the daemon calls once
// the group's accept loop has ended.
type connTracker struct {
	mu       sync.Mutex
	conns    map[net.Conn]connState
	draining atomic.Bool   // written under mu; read without it on the per-request path
	sealed   bool          // no connection will be added any more
	done     chan struct{} // closed once draining, sealed and conns is empty

	// mover hands connections to the next worker instead of closing
	// them (handoff.go).
	mover atomic.Pointer[connMover]

	accepted   atomic.Uint64 // connections ever added, for the master's counts
	handedOver atomic.Uint64 // of those, taken over from the previous worker (handoff.go)
	counts     connCounts    // open connections by kind, for the report (report.go)
}

type connState struct {
	idle      bool // connections without a status word (kindOf)
	linger    bool // HTTP/2: close a while after it turns idle, not at once
	closing   bool // a delayed close is pending
	idleSince time.Time
}

func newConnTracker() *connTracker {
	return &connTracker{conns: make(map[net.Conn]connState), done: make(chan struct{})}
}

// add tracks a new connection as busy.
func (t *connTracker) add(c net.Conn) {
	t.accepted.Add(1)
	t.mu.Lock()
	if _, ok := t.conns[c]; !ok {
		t.conns[c] = connState{}
		t.countLocked(c, connState{}, true)
	}
	if t.draining.Load() {
		t.tryMove(c) // accepted (or handed over) as the drain began
	}
	t.mu.Unlock()
}

// setIdle records whether c is idle. An idle connection of a draining group
// is closed at once, or after h2Linger when linger is set.
func (t *connTracker) setIdle(c net.Conn, idle, linger bool) {
	t.mu.Lock()
	st, ok := t.conns[c]
	if !ok {
		t.mu.Unlock()
		return
	}
	if idle && !st.idle {
		st.idleSince = time.Now()
	}
	if kind, _ := kindOf(c); kind == trackedOther && idle != st.idle {
		if idle {
			t.counts.otherIdle.Add(1)
		} else {
			t.counts.otherIdle.Add(-1)
		}
	}
	st.idle, st.linger = idle, linger
	t.conns[c] = st
	closeNow := idle && t.draining.Load() && t.closeIdleLocked(c)
	t.mu.Unlock()
	if closeNow {
		c.Close()
	}
}

// closeIdleLocked handles idle connection c of a draining group: it reports
// whether to close c now (it is then no longer tracked), or arranges a
// delayed close for a lingering one.
func (t *connTracker) closeIdleLocked(c net.Conn) bool {
	if t.tryMove(c) || t.keepsIdleOpen(c) {
		return false
	}
	st := t.conns[c]
	if asHTTPConn(c) == nil && !st.linger {
		t.forgetLocked(c)
		t.checkDoneLocked()
		return true
	}
	if !st.closing {
		st.closing = true
		t.conns[c] = st
		time.AfterFunc(lingerFor(c, st), func() { t.closeIfIdle(c) })
	}
	return false
}

func lingerFor(c net.Conn, st connState) time.Duration {
	if st.linger || isHTTP2(c) {
		return h2Linger
	}
	return h1Linger
}

// closeIfIdle closes c if it is still tracked and idle.
func (t *connTracker) closeIfIdle(c net.Conn) {
	t.mu.Lock()
	st, ok := t.conns[c]
	if ok {
		st.closing = false
		t.conns[c] = st
	}
	if !ok || !isIdle(c, st) {
		t.mu.Unlock()
		return
	}
	linger := lingerFor(c, st)
	if wait := linger - time.Since(st.idleSince); !st.idleSince.IsZero() && wait > 0 {
		// It turned busy and idle again meanwhile: a full linger from then.
		st.closing = true
		t.conns[c] = st
		t.mu.Unlock()
		time.AfterFunc(wait, func() { t.closeIfIdle(c) })
		return
	}
	if t.tryMove(c) {
		t.mu.Unlock()
		return
	}
	if hc := asHTTPConn(c); hc != nil && linger == h1Linger && hc.status.Load()&statusRead != 0 {
		// The next request is arriving; net/http reports the connection
		// busy only once its header is complete, and answers it with
		// Connection: close. Bytes that never make a request must not
		// hold the drain for IdleTimeout: give them ReadHeaderTimeout.
		hc.SetReadDeadline(time.Now().Add(DefaultReadHeaderTimeout))
		t.mu.Unlock()
		return
	}
	t.forgetLocked(c)
	t.checkDoneLocked()
	t.mu.Unlock()
	c.Close()
}

// isIdle reports whether tracked connection c is idle. HTTP and FastCGI
// connections keep that in their status word, set without the tracker's
// lock on every request.
func isIdle(c net.Conn, st connState) bool {
	if _, status := kindOf(c); status != nil {
		return status.Load()&statusIdle != 0
	}
	return st.idle
}

// httpIdle records whether HTTP connection c is idle: the per-request path,
// which takes no lock unless the group drains. The drain sets draining
// before it looks at idle flags, and this sets the flag before it looks at
// draining, so one of the two always sees the other.
func (t *connTracker) httpIdle(c net.Conn, hc *httpConn, idle bool) {
	var old, new uint64
	if idle {
		old, new = hc.status.toIdle()
	} else {
		old, new = hc.status.change(statusBusy, statusIdle|statusEarly)
	}
	// recount, for the one bit these two changes can flip: a hijacked
	// connection is never reported busy or idle again.
	if (old^new)&statusIdle != 0 && old&(statusTracked|statusHijacked) == statusTracked {
		if idle {
			t.counts.httpIdle.Add(1)
		} else {
			t.counts.httpIdle.Add(-1)
		}
	}
	if t.draining.Load() {
		t.setIdle(c, idle, idle && isHTTP2(c))
	}
}

// remove forgets c, which its owner has closed or is closing.
func (t *connTracker) remove(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgetLocked(c)
	t.checkDoneLocked()
}

// forgetLocked stops tracking c, and counting it.
func (t *connTracker) forgetLocked(c net.Conn) {
	st, ok := t.conns[c]
	if !ok {
		return
	}
	delete(t.conns, c)
	t.countLocked(c, st, false)
}

// drain starts draining: idle connections are closed now, busy ones when
// they turn idle or are removed.
func (t *connTracker) drain() {
	t.mu.Lock()
	t.draining.Store(true)
	var closing, moving []net.Conn
	for c, st := range t.conns {
		if t.mover.Load() != nil {
			moving = append(moving, c) // moved by moveAll, outside the lock
			continue
		}
		if isIdle(c, st) && t.closeIdleLocked(c) {
			closing = append(closing, c)
		}
	}
	t.checkDoneLocked()
	t.mu.Unlock()
	closeConns(closing)
	t.moveAll(moving)
}

// seal says that no connection will be added any more.
func (t *connTracker) seal() {
	t.mu.Lock()
	t.sealed = true
	t.checkDoneLocked()
	t.mu.Unlock()
}

// closeAll closes every connection, busy or not: the hard stop.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	t.draining.Store(true)
	t.sealed = true
	closing := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		closing = append(closing, c)
	}
	for _, c := range closing {
		t.forgetLocked(c)
	}
	t.checkDoneLocked()
	t.mu.Unlock()
	closeConns(closing)
}

// closeConns closes outside the tracker's lock: a TLS close writes an alert
// and may take a while.
func closeConns(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// count reports how many connections are open.
func (t *connTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns) + int(t.counts.parkedHTTP.Load()+t.counts.parkedFCGI.Load())
}

func (t *connTracker) checkDoneLocked() {
	if !t.draining.Load() || !t.sealed || len(t.conns) > 0 {
		return
	}
	select {
	case <-t.done:
	default:
		close(t.done)
	}
}

// closeWhenDraining makes every response that starts once the group is
// draining carry "Connection: close" — also the response of a request that
// was already in flight when the drain began: HTTP/1 then closes the
// connection after the response, HTTP/2 sends GOAWAY. This is used instead of
// SetKeepAlivesEnabled(false), which also closes connections accepted over
// five seconds ago whose request has not arrived yet, and of Shutdown, which
// can read a request and close its connection unanswered.
func (gs *groupServer) closeWhenDraining(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := drainingWriters.Get().(*drainingWriter)
		*dw = drainingWriter{ResponseWriter: w, gs: gs, http2: r.ProtoMajor == 2}
		defer gs.recoverHTTP(dw, r) // and releases dw
		h.ServeHTTP(dw, r)
		if dw.hijackedConn == nil {
			// A handler that wrote nothing: net/http sends the
			// header now, and it must say close too.
			dw.beforeHeader()
		}
	})
}

// drainingWriters recycles the drainingWriters of requests whose handler
// returned: one fewer allocation per request.
var drainingWriters = sync.Pool{New: func() any { return new(drainingWriter) }}

// release returns w to drainingWriters once its handler has returned, unless
// the handler took the connection over (the goroutines it started with the
// connection may still hold w). A handler that keeps w after returning (a
// bug: net/http's own writer is not usable then either) finds it inert: its
// writes fail with errHandlerReturned, none reaches the connection, until w
// serves another request.
func (w *drainingWriter) release() {
	if w.hijackedConn != nil {
		return
	}
	*w = drainingWriter{ResponseWriter: returnedWriter{}, wroteHeader: true}
	drainingWriters.Put(w)
}

// errHandlerReturned is what a drainingWriter used after its handler
// returned answers.
var errHandlerReturned = errors.New("http: response writer used after the handler returned")

// returnedWriter stands in a released drainingWriter for the response.
type returnedWriter struct{}

func (returnedWriter) Header() http.Header              { return http.Header{} }
func (returnedWriter) Write([]byte) (int, error)        { return 0, errHandlerReturned }
func (returnedWriter) WriteHeader(int)                  {}
func (returnedWriter) FlushError() error                { return errHandlerReturned }
func (returnedWriter) SetReadDeadline(time.Time) error  { return errHandlerReturned }
func (returnedWriter) SetWriteDeadline(time.Time) error { return errHandlerReturned }

// drainingWriter adds "Connection: close" to a response whose header goes out
// while its group drains. It keeps the optional interfaces of the writer it
// wraps that handlers use: Flusher, Hijacker, io.ReaderFrom (sendfile), and
// Unwrap for http.ResponseController.
type drainingWriter struct {
	http.ResponseWriter
	gs           *groupServer
	wroteHeader  bool
	http2        bool          // the request came over HTTP/2 (TLS or h2c)
	hijackedConn *hijackedConn // set once the handler took the connection over
}

// beforeHeader runs before the response header is sent.
func (w *drainingWriter) beforeHeader() {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	// An HTTP/1.x connection that moves to the new worker needs no
	// close. An HTTP/2 one never moves: Connection: close makes net/http
	// send GOAWAY, the only graceful end an h2c connection gets.
	if w.gs.draining.Load() && (w.http2 || !w.gs.tracker.moves()) {
		w.Header().Set("Connection", "close")
	}
}

func (w *drainingWriter) WriteHeader(code int) {
	if code >= 200 { // 1xx responses leave the final header to come
		w.beforeHeader()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *drainingWriter) Write(p []byte) (int, error) {
	w.beforeHeader()
	return w.ResponseWriter.Write(p)
}

func (w *drainingWriter) ReadFrom(r io.Reader) (int64, error) {
	w.beforeHeader()
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(w.ResponseWriter, r)
}

func (w *drainingWriter) WriteString(s string) (int, error) {
	w.beforeHeader()
	return io.WriteString(w.ResponseWriter, s)
}

func (w *drainingWriter) Flush() {
	w.beforeHeader()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// FlushError lets http.ResponseController report a failed flush (a client
// gone) instead of stopping at Flush, which cannot.
func (w *drainingWriter) FlushError() error {
	w.beforeHeader()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection to the handler; it stays tracked until the
// handler closes it.
func (w *drainingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.hijackedConn = &hijackedConn{Conn: c, tracker: w.gs.tracker}
	return w.hijackedConn, brw, nil
}

// CloseNotify keeps http.CloseNotifier, deprecated but still asserted
// unchecked by some frameworks.
func (w *drainingWriter) CloseNotify() <-chan bool {
	if cn, ok := w.ResponseWriter.(http.CloseNotifier); ok { //nolint:staticcheck
		return cn.CloseNotify()
	}
	return nil
}

func (w *drainingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

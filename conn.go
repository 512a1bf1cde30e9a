package gozd

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is the connection a tcp group's handler receives. It works as the
// net.Conn it wraps. Context is done once this process starts draining, so a
// handler that holds a connection open for long (a stream, a pub/sub
// subscriber) can finish its current exchange and return early instead of
// being cut when drain_timeout runs out.
//
// The connection counts as active until the handler returns; gozd closes it
// then if the handler did not.
//
// The value gozd passes also has what the connection beneath can do:
// io.ReaderFrom and io.WriterTo (so io.Copy uses sendfile and splice),
// CloseWrite and CloseRead, and NetConn() net.Conn, which returns the
// *net.TCPConn or *net.UnixConn (for SetNoDelay, SyscallConn). They are not
// in this interface, so that tests can still fake a Conn; assert them:
//
//	nc := conn.(interface{ NetConn() net.Conn }).NetConn()
type Conn interface {
	net.Conn
	// Context is cancelled when the daemon starts draining or closing.
	Context() context.Context
	// Handoff passes the connection, with up to 64 KiB of state, to the
	// new worker of a reload, which calls the group's handler with it, and
	// returns nil once that worker has taken it. Call it once Context is
	// done, at a message boundary; bytes read and not used belong in
	// state, bytes still unread in the kernel move with the connection.
	// After nil, return without reading, writing or closing: the
	// connection is no longer this worker's. An error (wrapping
	// ErrNoHandoff when no worker can take it: not draining, a stop rather
	// than a reload, the new worker gone, the group removed) leaves the
	// connection usable.
	Handoff(state []byte) error
	// Resumed returns the state passed with Handoff, and true, for a
	// connection taken over from the previous worker; nil and false for
	// one accepted by this worker.
	Resumed() (state []byte, ok bool)
}

// tcpConn is the Conn handed to tcp handlers.
type tcpConn struct {
	net.Conn
	ctx context.Context

	closeOnce sync.Once
	closeErr  error

	// For Handoff and Resumed (handoff_tcp.go).
	gs      *groupServer
	resumed *tcpResumed
}

func (c *tcpConn) Context() context.Context { return c.ctx }

// Close closes the underlying connection once; a handler closing its own
// connection and gozd closing it after the handler returns do not collide.
func (c *tcpConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.Conn.Close() })
	return c.closeErr
}

// retryingListener retries failed accepts (out of descriptors and the like)
// with a growing pause, as net/http does, instead of spinning or giving up;
// only a closed listener ends it.
type retryingListener struct {
	net.Listener
	log *slog.Logger
}

func (l retryingListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil || errors.Is(err, net.ErrClosed) {
			return c, err
		}
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		l.log.Warn("accept failed; retrying", "err", err, "in", backoff)
		time.Sleep(backoff)
	}
}

// httpListener wraps the connections of an http or https group in httpConn.
type httpListener struct{ net.Listener }

func (l httpListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &httpConn{Conn: c}, nil
}

// httpConn records whether bytes arrived since net/http last reported the
// connection idle (statusRead): net/http reports a connection busy only once
// a whole request header has arrived, and a drain must not close one whose
// request is halfway in. Its state is one status word, which each change of
// state updates with one compare-and-swap; the fields every request touches
// come first.
type httpConn struct {
	net.Conn
	status connStatus  // tracked, idle, busy, read, early, hijacked (statusBusy)
	seen   int         // bytes of the HTTP/2 preface the first reads matched; prefaceDecided once known
	h2c    atomic.Bool // speaks HTTP/2 without TLS (see noteFirstRead)
	mv     connMove    // handing it to the next worker (handoff.go)
}

func (c *httpConn) Read(p []byte) (int, error) {
	if c.mv.moving.Load() {
		// net/http may have set its idle deadline after startMove set
		// the one that wakes this read: wake it again. startMove sets
		// moving before its deadline, so a read that finds moving
		// unset is woken by that deadline instead.
		c.Conn.SetReadDeadline(aLongTimeAgo)
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		// Only net/http's background read asks for one byte: what it
		// took is the next request's first.
		early := n == 1 && len(p) == 1
		if early || c.status.Load()&statusRead == 0 {
			c.markRead(early)
		}
		if c.seen < prefaceDecided {
			c.noteFirstRead(p[:n])
		}
		if c.mv.moving.Load() || c.mv.resumed.Load() {
			c.afterRead()
		}
	}
	return n, err
}

func (c *httpConn) markRead(early bool) {
	set := uint64(statusRead)
	if early {
		set |= statusEarly
	}
	c.status.change(set, 0)
}

// ReadFrom and CloseWrite keep what net/http uses of the connection it
// wraps: sendfile for file bodies, half-close before closing.
func (c *httpConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

func (c *httpConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// asHTTPConn finds the httpConn under c (plain, taken over, or beneath
// TLS).
func asHTTPConn(c net.Conn) *httpConn {
	switch c := c.(type) {
	case *httpConn:
		return c
	case resumedConn:
		return c.httpConn
	case *tls.Conn:
		hc, _ := c.NetConn().(*httpConn)
		return hc
	}
	return nil
}

// hijackedConn is a connection an HTTP handler took over; closing it tells
// the group's tracker, which keeps it until then.
type hijackedConn struct {
	net.Conn
	tracker *connTracker
	once    sync.Once
}

// Close closes the connection, then lets the drain know: in that order, so
// the process cannot exit before the close (a TLS close_notify) is sent.
func (c *hijackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.tracker.remove(c.Conn) })
	return err
}

// NetConn returns the connection beneath, for code that needs its type
// (*net.TCPConn, *tls.Conn).
func (c *hijackedConn) NetConn() net.Conn { return netConnBeneath(c.beneath()) }

// beneath is the connection under gozd's HTTP wrapper.
func (c *hijackedConn) beneath() net.Conn {
	switch hc := c.Conn.(type) {
	case *httpConn:
		return hc.Conn
	case resumedConn:
		return hc.Conn
	}
	return c.Conn
}

// CloseWrite, CloseRead and ReadFrom keep half-close for tunnels and
// zero-copy io.Copy into the connection.
func (c *hijackedConn) CloseWrite() error {
	if cw, ok := c.beneath().(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *hijackedConn) CloseRead() error {
	if cr, ok := c.beneath().(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errors.ErrUnsupported
}

func (c *hijackedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.beneath().(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// fcgiListener tracks the connections of a FastCGI group; net/http/fcgi
// offers no connection hook of its own.
type fcgiListener struct {
	net.Listener
	tracker *connTracker
}

func (l *fcgiListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	fc := &fcgiConn{Conn: c, tracker: l.tracker}
	l.tracker.add(fc)
	return fc, nil
}

// fcgiConn tells the tracker when its connection is idle: it turns busy when
// a request's records arrive and idle when the FastCGI END_REQUEST record
// goes out. net/http/fcgi writes every record with one Write, and web servers
// such as nginx send a connection's next request only after the previous
// response, so this is exact for them. A connection just accepted is busy
// until its first request is answered. Like httpConn it keeps that in its
// status word, without the tracker's lock, which it takes only once the
// group drains.
type fcgiConn struct {
	net.Conn
	tracker *connTracker
	once    sync.Once
	status  connStatus // tracked, idle, and where its records stand (handoff_fcgi.go)
	mv      fcgiMove   // its records, and handing it to the next worker (handoff_fcgi.go)
}

// fcgiEndRequest is the FastCGI record type FCGI_END_REQUEST.
const fcgiEndRequest = 3

func (c *fcgiConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		_, status := c.afterRead(p[:n])
		c.idleWhileDraining(status)
	}
	return n, err
}

func (c *fcgiConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err == nil && len(p) >= 4 && p[0] == 1 && p[1] == fcgiEndRequest {
		_, status := c.requestEnded(p)
		c.idleWhileDraining(status)
	}
	return n, err
}

// idleWhileDraining lets a draining group's tracker move or close the
// connection now idle. It sets the idle bit before it looks at draining, and
// the drain sets draining before it looks at idle bits: one of the two sees
// the other.
func (c *fcgiConn) idleWhileDraining(status uint64) {
	if status&statusIdle != 0 && c.tracker.draining.Load() {
		c.tracker.setIdle(c, true, false)
	}
}

func (c *fcgiConn) Close() error {
	err := c.closeOrHandOver()
	c.once.Do(func() { c.tracker.remove(c) })
	return err
}

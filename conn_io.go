package gozd

import (
	"errors"
	"io"
	"net"
)

// What the connection beneath a tcp Conn can do stays available: sendfile
// and splice through io.Copy (io.ReaderFrom, io.WriterTo), half-close, and
// the connection itself (NetConn) for SetNoDelay or SyscallConn. The
// connection stays tracked through all of these: it counts as active until
// the handler returns, whatever it did with the connection beneath.

// NetConn returns the connection beneath: a *net.TCPConn or *net.UnixConn.
// Closing it directly is allowed; gozd still sees the handler's end.
func (c *tcpConn) NetConn() net.Conn { return c.Conn }

// ReadFrom copies r into the connection with the kernel's help where it can
// (sendfile from an *os.File, splice from another socket).
func (c *tcpConn) ReadFrom(r io.Reader) (int64, error) { return readFrom(c.Conn, r) }

// WriteTo copies the connection into w, spliced when w is a socket.
func (c *tcpConn) WriteTo(w io.Writer) (int64, error) { return writeTo(c.Conn, w) }

// CloseWrite shuts down the writing side: the peer reads EOF while this side
// can still read its answer.
func (c *tcpConn) CloseWrite() error { return closeWrite(c.Conn) }

// CloseRead shuts down the reading side.
func (c *tcpConn) CloseRead() error { return closeRead(c.Conn) }

// netConnOf unwraps the gozd connections whose underlying connection the
// kernel can copy from directly.
func netConnOf(v any) any {
	if nc, ok := v.(interface{ NetConn() net.Conn }); ok {
		switch v.(type) {
		case *tcpConn, *serverConn:
			return nc.NetConn()
		}
	}
	return v
}

func readFrom(c net.Conn, r io.Reader) (int64, error) {
	r = netConnOf(r).(io.Reader)
	if rf, ok := c.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c}, r)
}

func writeTo(c net.Conn, w io.Writer) (int64, error) {
	w = netConnOf(w).(io.Writer)
	if wt, ok := c.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{c})
}

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func closeRead(c net.Conn) error {
	if cr, ok := c.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errors.ErrUnsupported
}

// NetConn returns the connection beneath an HTTP connection, for a
// program's ConnContext or ConnState that needs the *net.TCPConn.
func (c *httpConn) NetConn() net.Conn { return netConnBeneath(c.Conn) }

package gozd

// An HTTP/1.x or FastCGI connection taken over from the previous worker is
// served through the descriptor it came as. net.FileConn would cost a
// dozen system calls a connection (a duplicate, the socket's type and both
// addresses read back, no-delay and keep-alive set again, two
// registrations with the poller and one of them undone): at a reload with
// thousands of idle connections those were most of the new worker's work.
// A socket keeps its options from one process to the next, and the
// previous worker sends the addresses along with the descriptor, so an
// *os.File that the runtime polls serves it as it is: one registration.
//
// What only a *net.TCPConn or *net.UnixConn can do (NetConn's promise,
// sendfile) switches the connection over to one, made from the descriptor
// on first use; reads and writes under way at that moment carry on on it.

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// takenConn is a connection taken over from the previous worker.
type takenConn struct {
	file         *os.File
	laddr, raddr net.Addr

	// Once switched (asNetConn), everything goes to nc, and file is
	// closed.
	nc atomic.Pointer[net.Conn]

	mu            sync.Mutex // orders the switch with deadlines and Close
	readDeadline  time.Time
	writeDeadline time.Time
	closed        bool
	switchFailed  bool
}

// takenConnName names the descriptors of taken-over connections; a
// constant, so naming one allocates nothing.
const takenConnName = "handed-over connection"

// newTakenConn serves fd, a connected socket handed over with its
// addresses (nil when the previous worker sent none), and takes it: it is
// closed on error.
func newTakenConn(fd int, laddr, raddr net.Addr) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), takenConnName)
	if laddr != nil && f.SetDeadline(time.Time{}) == nil {
		return &takenConn{file: f, laddr: laddr, raddr: raddr}, nil
	}
	// No addresses, or a descriptor the runtime does not poll (a
	// blocking one, on which deadlines would not work).
	defer f.Close()
	return net.FileConn(f)
}

func (c *takenConn) switched() net.Conn {
	if p := c.nc.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *takenConn) Read(p []byte) (int, error) {
	if nc := c.switched(); nc != nil {
		return nc.Read(p)
	}
	n, err := c.file.Read(p)
	if err != nil && n == 0 && errors.Is(err, os.ErrClosed) {
		if nc := c.switched(); nc != nil {
			return nc.Read(p) // the switch closed the file under this read
		}
	}
	return n, c.opError("read", err)
}

func (c *takenConn) Write(p []byte) (int, error) {
	if nc := c.switched(); nc != nil {
		return nc.Write(p)
	}
	n, err := c.file.Write(p)
	if err != nil && errors.Is(err, os.ErrClosed) {
		if nc := c.switched(); nc != nil {
			m, err := nc.Write(p[n:])
			return n + m, err
		}
	}
	return n, c.opError("write", err)
}

func (c *takenConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("close", os.ErrClosed)
	}
	c.closed = true
	if nc := c.switched(); nc != nil {
		return nc.Close()
	}
	return c.opError("close", c.file.Close())
}

func (c *takenConn) LocalAddr() net.Addr  { return c.laddr }
func (c *takenConn) RemoteAddr() net.Addr { return c.raddr }

func (c *takenConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline, c.writeDeadline = t, t
	if nc := c.switched(); nc != nil {
		return nc.SetDeadline(t)
	}
	return c.opError("set", c.file.SetDeadline(t))
}

func (c *takenConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	if nc := c.switched(); nc != nil {
		return nc.SetReadDeadline(t)
	}
	return c.opError("set", c.file.SetReadDeadline(t))
}

func (c *takenConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeDeadline = t
	if nc := c.switched(); nc != nil {
		return nc.SetWriteDeadline(t)
	}
	return c.opError("set", c.file.SetWriteDeadline(t))
}

// SyscallConn gives the descriptor, for handing the connection on at the
// next reload (connFD), and to programs.
func (c *takenConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.switched().(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return c.file.SyscallConn()
}

// ReadFrom copies r into the connection through a *net.TCPConn or
// *net.UnixConn, which uses sendfile or splice where it can.
func (c *takenConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.asNetConn().(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c}, r)
}

func (c *takenConn) CloseWrite() error { return c.shutdown("close write", unix.SHUT_WR) }
func (c *takenConn) CloseRead() error  { return c.shutdown("close read", unix.SHUT_RD) }

func (c *takenConn) shutdown(op string, how int) error {
	if nc := c.switched(); nc != nil {
		if how == unix.SHUT_WR {
			return closeWrite(nc)
		}
		return closeRead(nc)
	}
	rc, err := c.file.SyscallConn()
	if err != nil {
		return c.opError(op, err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), how) }); err != nil {
		return c.opError(op, err)
	}
	if serr != nil {
		serr = os.NewSyscallError("shutdown", serr)
	}
	return c.opError(op, serr)
}

// asNetConn switches the connection to a *net.TCPConn or *net.UnixConn made
// from its descriptor, once, and returns it; c itself if that fails (out of
// descriptors) or c is closed. A read or write blocked on the file meanwhile
// wakes and carries on on the new one.
func (c *takenConn) asNetConn() net.Conn {
	if nc := c.switched(); nc != nil {
		return nc
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if nc := c.switched(); nc != nil {
		return nc
	}
	if c.closed || c.switchFailed {
		return c
	}
	nc, err := net.FileConn(c.file)
	if err != nil {
		c.switchFailed = true
		return c
	}
	nc.SetReadDeadline(c.readDeadline)
	nc.SetWriteDeadline(c.writeDeadline)
	c.nc.Store(&nc)
	c.file.Close()
	return nc
}

// opError gives err the form net's own connections give theirs, so that
// net/http tells a timeout or a closed connection from other failures.
func (c *takenConn) opError(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, os.ErrClosed):
		err = net.ErrClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
	default:
		if errno, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError(op, errno)
		}
	}
	network := "tcp"
	if c.laddr != nil {
		network = c.laddr.Network()
	}
	return &net.OpError{Op: op, Net: network, Source: c.laddr, Addr: c.raddr, Err: err}
}

// netConnBeneath returns c, or for a taken-over connection the *net.TCPConn
// or *net.UnixConn it switches to: what NetConn promises.
func netConnBeneath(c net.Conn) net.Conn {
	if tc, ok := c.(*takenConn); ok {
		return tc.asNetConn()
	}
	return c
}

// Addresses travel in a batch entry as a tag, a length and the bytes:
// 't' an AddrPort's binary form, 'u' a unix socket's name, 0 none.
func appendAddr(b []byte, a net.Addr) []byte {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		b = append(b, 't', 0)
		at := len(b)
		b, _ = ap.AppendBinary(b)
		b[at-1] = byte(len(b) - at)
		return b
	case *net.UnixAddr:
		if len(a.Name) <= 255 {
			b = append(b, 'u', byte(len(a.Name)))
			return append(b, a.Name...)
		}
	}
	return append(b, 0, 0)
}

var errBadAddr = errors.New("bad address")

// parseAddr reads an address appendAddr wrote, and returns the rest.
func parseAddr(b []byte) (net.Addr, []byte, error) {
	if len(b) < 2 || len(b) < 2+int(b[1]) {
		return nil, nil, errBadAddr
	}
	tag, data, rest := b[0], b[2:2+int(b[1])], b[2+int(b[1]):]
	switch tag {
	case 't':
		var ap netip.AddrPort
		if err := ap.UnmarshalBinary(data); err != nil {
			return nil, nil, errBadAddr
		}
		return net.TCPAddrFromAddrPort(ap), rest, nil
	case 'u':
		return &net.UnixAddr{Name: string(data), Net: "unix"}, rest, nil
	case 0:
		if len(data) == 0 {
			return nil, rest, nil
		}
	}
	return nil, nil, errBadAddr
}

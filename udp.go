package gozd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PacketConn is the socket a udp group's handler receives: a net.PacketConn
// whose Context is done once this process starts draining.
//
// At the drain ReadFrom returns an error wrapping net.ErrClosed (after
// delivering any datagram it already took), while WriteTo keeps working until
// the handler returns, so replies to the datagrams already read still go
// out. The master keeps the socket open meanwhile: datagrams that arrive are
// read by the next worker. gozd closes the socket when the handler returns.
type PacketConn interface {
	net.PacketConn
	// Context is cancelled when the daemon starts draining or closing.
	Context() context.Context
}

// HandlePacket registers f for the udp group named group. f runs once per
// worker, in its own goroutine, and should return once ReadFrom fails with
// net.ErrClosed (the drain) and the replies in progress are written.
func (d *Daemon) HandlePacket(group string, f func(PacketConn)) error {
	if f == nil {
		return fmt.Errorf("group %q: nil handler", group)
	}
	return d.register(group, f)
}

// packetListener holds a udp group's socket where gozd keeps listeners, so
// that the master holds and hands it over like any other. Accept blocks
// until Close. Close closes the socket, except in a worker serving it,
// where it only stops the reads (see udpConn).
type packetListener struct {
	pc   *net.UDPConn
	addr net.Addr

	mu       sync.Mutex
	serving  *udpConn // set once a handler runs: Close then ends reads only
	closed   chan struct{}
	closeErr error
	once     sync.Once
}

func newPacketListener(pc *net.UDPConn) *packetListener {
	return &packetListener{pc: pc, addr: pc.LocalAddr(), closed: make(chan struct{})}
}

func (l *packetListener) Accept() (net.Conn, error) {
	<-l.closed
	return nil, net.ErrClosed
}

func (l *packetListener) Addr() net.Addr { return l.addr }

func (l *packetListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.mu.Lock()
		uc := l.serving
		l.mu.Unlock()
		if uc != nil {
			uc.stopReading()
			return
		}
		l.closeErr = l.pc.Close()
	})
	return l.closeErr
}

// SyscallConn lets the master duplicate the socket for its workers.
func (l *packetListener) SyscallConn() (syscall.RawConn, error) { return l.pc.SyscallConn() }

// listenPacket binds a udp group's socket.
func listenPacket(g *GroupConfig) (net.Listener, error) {
	pc, err := net.ListenPacket("udp", g.Address)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g, err)
	}
	return newPacketListener(pc.(*net.UDPConn)), nil
}

// listenerFromFile takes over an inherited socket: a listening stream socket
// or a datagram socket (a udp group's). f stays open; the caller closes it.
func listenerFromFile(f *os.File) (net.Listener, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	sotype := -1
	var serr error
	if err := rc.Control(func(fd uintptr) {
		sotype, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
	}); err != nil {
		return nil, err
	}
	if serr != nil || sotype != unix.SOCK_DGRAM {
		return net.FileListener(f)
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("datagram socket %s is not udp (%s)", f.Name(), pc.LocalAddr().Network())
	}
	return newPacketListener(uc), nil
}

// sameUDPAddr reports whether a configured host:port names addr, an empty
// host matching the wildcard address.
func sameUDPAddr(configured string, addr net.Addr) bool {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return false
	}
	return sameTCPAddr(configured, &net.TCPAddr{IP: ua.IP, Port: ua.Port, Zone: ua.Zone})
}

// servePackets runs handler once on the group's socket. The handler counts as
// one busy connection of the group's tracker, so the drain waits for it and
// a hard stop closes the socket under it.
func (gs *groupServer) servePackets(handler func(PacketConn), connCtx context.Context, wg *sync.WaitGroup) {
	pl := gs.ln.(*packetListener)
	uc := &udpConn{pc: pl.pc, ctx: connCtx}
	pl.mu.Lock()
	pl.serving = uc
	pl.mu.Unlock()
	token := &packetHandler{uc: uc}
	gs.tracker.add(token)
	gs.tcp.Add(1)
	wg.Add(1)
	go func() {
		// The group's "accept loop" is over at the drain: nothing is
		// added to its tracker any more.
		<-connCtx.Done()
		wg.Done()
	}()
	go func() {
		defer gs.tcp.Done()
		defer func() {
			uc.Close()
			gs.tracker.remove(token)
		}()
		defer func() {
			if r := recover(); r != nil {
				gs.log.Error("udp handler panicked; the group stops reading until the next worker", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			}
		}()
		handler(uc)
	}()
}

// packetHandler stands for a running udp handler in the group's tracker;
// closing it (the hard stop) closes the socket.
type packetHandler struct {
	net.Conn // nil: only Close is used
	uc       *udpConn
}

func (p *packetHandler) Close() error { return p.uc.Close() }

// udpConn is the PacketConn of a udp handler.
type udpConn struct {
	pc  *net.UDPConn
	ctx context.Context

	mu           sync.Mutex
	draining     bool
	readDeadline time.Time // the handler's own, kept while not draining
	closeOnce    sync.Once
	closeErr     error
}

func (c *udpConn) Context() context.Context { return c.ctx }

// ReadFrom reads the next datagram. Once the drain began it returns an error
// wrapping net.ErrClosed instead of waiting, but a datagram already taken off
// the socket is still returned.
func (c *udpConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.mu.Lock()
	draining := c.draining
	c.mu.Unlock()
	if draining {
		return 0, nil, drainedRead(c.pc.LocalAddr())
	}
	n, addr, err := c.pc.ReadFrom(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.mu.Lock()
		draining = c.draining
		c.mu.Unlock()
		if draining {
			return n, addr, drainedRead(c.pc.LocalAddr())
		}
	}
	return n, addr, err
}

func drainedRead(addr net.Addr) error {
	return &net.OpError{Op: "read", Net: "udp", Addr: addr, Err: fmt.Errorf("draining: %w", net.ErrClosed)}
}

func (c *udpConn) WriteTo(p []byte, addr net.Addr) (int, error) { return c.pc.WriteTo(p, addr) }
func (c *udpConn) LocalAddr() net.Addr                          { return c.pc.LocalAddr() }

func (c *udpConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.pc.SetWriteDeadline(t)
}

// SetReadDeadline sets the handler's read deadline; while draining, reads
// stay stopped whatever it says.
func (c *udpConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	if c.draining {
		return nil
	}
	return c.pc.SetReadDeadline(t)
}

func (c *udpConn) SetWriteDeadline(t time.Time) error { return c.pc.SetWriteDeadline(t) }

// stopReading ends the reads for the drain: a ReadFrom waiting now returns at
// once. Writes go on.
func (c *udpConn) stopReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	c.pc.SetReadDeadline(time.Unix(1, 0))
}

// Close closes this process's descriptor of the socket; the master keeps the
// socket itself.
func (c *udpConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.pc.Close() })
	return c.closeErr
}

// Package latencyproxy is a loopback TCP proxy that delays each direction
// of every connection by a fixed time, as a network link would: bytes keep
// their order, and a half-close (FIN) or a reset (RST) reaches the other
// side after the same delay as the data before it. It stands in for netem,
// which the test machines lack, in the tests and the benchmark: over a
// delayed link a server's FIN can cross a client's next request, which on
// plain loopback never happens.
package latencyproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Proxy forwards the connections it accepts on a loopback address to a
// target, each direction delayed by Delay.
type Proxy struct {
	ln      net.Listener
	network string
	target  string
	delay   time.Duration

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Start listens on 127.0.0.1 (a free port) and forwards every connection to
// target on network ("tcp" or "unix"), delaying each direction by delay.
func Start(network, target string, delay time.Duration) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("latencyproxy: %w", err)
	}
	p := &Proxy{ln: ln, network: network, target: target, delay: delay, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, resets every forwarded connection and waits for
// the proxy's goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		reset(c)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.forward(client)
	}
}

// track records c so Close can reset it; it reports false once the proxy
// is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// forward connects client to the target and pumps both directions until
// both have ended.
func (p *Proxy) forward(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial(p.network, p.target)
	if err != nil {
		// The target refused: the client learns it as a reset, after
		// the delay a refusal would take to travel back.
		time.Sleep(p.delay)
		reset(client)
		return
	}
	if !p.track(client) {
		reset(client)
		server.Close()
		return
	}
	p.track(server)
	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); p.pump(client, server) }()
	go func() { defer pumps.Done(); p.pump(server, client) }()
	pumps.Wait()
	client.Close()
	server.Close()
	p.untrack(client)
	p.untrack(server)
}

// segment is what one read from a side returned, to be replayed on the
// other side at due.
type segment struct {
	data []byte
	due  time.Time
	end  endKind
}

type endKind int

const (
	endNone endKind = iota
	endFIN          // the sender half-closed: forward a FIN
	endRST          // the sender reset: reset the receiver
	endGone         // the proxy closed the socket: nothing to forward
)

// pump copies src to dst, each read delivered delay after it was read.
func (p *Proxy) pump(src, dst net.Conn) {
	q := make(chan segment, 4096)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			due := time.Now().Add(p.delay)
			if n > 0 {
				q <- segment{data: buf[:n], due: due}
			}
			if err != nil {
				end := endFIN
				switch {
				case errors.Is(err, syscall.ECONNRESET):
					end = endRST
				case errors.Is(err, net.ErrClosed):
					end = endGone
				}
				q <- segment{due: due, end: end}
				return
			}
		}
	}()
	broken := false // dst refused a write: drop what follows
	for s := range q {
		if wait := time.Until(s.due); wait > 0 {
			time.Sleep(wait)
		}
		switch s.end {
		case endNone:
			if !broken {
				if _, err := dst.Write(s.data); err != nil {
					broken = true
					if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
						// dst reset: its reset travels back to src.
						time.AfterFunc(p.delay, func() { reset(src) })
					}
				}
			}
		case endFIN:
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			} else {
				dst.Close()
			}
		case endRST:
			reset(dst)
			// The reset side is gone both ways: end the other
			// direction's read too.
			src.Close()
		}
	}
}

// reset closes c with a RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

package gozd

import (
	"context"
	"net"
	"sync"
)

// Conn is the connection a tcp group's handler receives. It works as the
// net.Conn it wraps. Context is done once this process starts draining, so a
// handler that holds a connection open for long (a stream, a pub/sub
// subscriber) can finish its current exchange and return early instead of
// being cut when drain_timeout runs out.
//
// The connection counts as active until the handler returns; gozd closes it
// then if the handler did not.
type Conn interface {
	net.Conn
	// Context is cancelled when the daemon starts draining or closing.
	Context() context.Context
}

// tcpConn is the Conn handed to tcp handlers.
type tcpConn struct {
	net.Conn
	ctx context.Context

	closeOnce sync.Once
	closeErr  error
}

func (c *tcpConn) Context() context.Context { return c.ctx }

// Close closes the underlying connection once; a handler closing its own
// connection and gozd closing it after the handler returns do not collide.
func (c *tcpConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.Conn.Close() })
	return c.closeErr
}

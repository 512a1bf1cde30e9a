package gozd

// TLS connections cannot move to the new worker: the session's keys and
// sequence numbers live inside crypto/tls in this process. So a drain tells
// them instead of cutting them:
//
//   - HTTP/2: a graceful GOAWAY at once, as http.Server.Shutdown sends it;
//     streams in flight finish and the connection closes when they are done.
//   - HTTP/1.1: an idle connection stays open; its next response says
//     "Connection: close", and otherwise net/http closes it at its idle
//     timeout, as it would have without a reload (drain_timeout bounds it).

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
)

// goAwayServer holds net/http's HTTP/2 server for an https group: the
// group's connections that negotiate h2 are served by it, so its shutdown
// hook — which sends GOAWAY on every HTTP/2 connection it serves — can run
// at the drain without http.Server.Shutdown on the group's own server,
// which would close idle HTTP/1 connections and drop a request read at
// that moment.
type goAwayServer struct{ srv *http.Server }

// useGoAwayServer makes srv serve HTTP/2 through a goAwayServer, unless
// srv's HTTP/2 is configured otherwise (off, or set up by the program).
func useGoAwayServer(srv *http.Server) *goAwayServer {
	if srv.TLSNextProto != nil || (srv.Protocols != nil && !srv.Protocols.HTTP2()) {
		return nil
	}
	// Per-connection settings come from srv, the connections' base
	// server; h2 only hosts the HTTP/2 server and its shutdown hook.
	h2 := &http.Server{IdleTimeout: srv.IdleTimeout, HTTP2: srv.HTTP2}
	// Serve sets up net/http's HTTP/2 server (and its shutdown hook) on
	// h2 before it accepts; the closed listener ends it at once.
	h2.Serve(closedListener{})
	next, ok := h2.TLSNextProto["h2"]
	if !ok {
		return nil // HTTP/2 disabled (GODEBUG=http2server=0)
	}
	srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){"h2": next}
	return &goAwayServer{srv: h2}
}

// goAway sends GOAWAY on every HTTP/2 connection of the group.
func (g *goAwayServer) goAway() {
	if g != nil {
		// The server has no listener and no connection of its own:
		// Shutdown only runs the hooks, and returns.
		go g.srv.Shutdown(context.Background())
	}
}

// keepsIdleOpen reports whether the drain leaves idle connection c open: a
// TLS connection speaking HTTP/1.1, at a reload. A stop (no new worker)
// closes it, as http.Server.Shutdown would.
func (t *connTracker) keepsIdleOpen(c net.Conn) bool {
	if t.mover.Load() == nil {
		return false
	}
	_, ok := c.(*tls.Conn)
	return ok && !isHTTP2(c)
}

type closedListener struct{}

func (closedListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (closedListener) Close() error              { return nil }
func (closedListener) Addr() net.Addr            { return &net.TCPAddr{} }

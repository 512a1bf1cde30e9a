package gozd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a server value that serves the connections of a listener, such
// as a *grpc.Server, an *http.Server or one of the program's own. A tcp group
// takes one in place of a func(Conn): see [Daemon.HandleServer].
type Server interface {
	Serve(net.Listener) error
}

// The methods gozd looks for on a Server value to drain and to stop it.
type (
	gracefulStopper interface{ GracefulStop() } // *grpc.Server
	shutdowner      interface {
		Shutdown(context.Context) error // *http.Server
	}
	stopper interface{ Stop() }        // *grpc.Server
	closer  interface{ Close() error } // *http.Server
)

// touchWait bounds how long a drain waits, before it stops a server value,
// for the server to start on the connections its listener just delivered.
const touchWait = time.Second

// HandleServer registers srv for the group named group.
//
// On a tcp group srv may be any Server. gozd calls srv.Serve with a listener
// that delivers the group's connections and reports the group ready once
// Serve has asked it for one. At the drain that listener stops delivering (new
// connections wait in the master's backlog for the next worker), then gozd
// calls srv.GracefulStop() if srv has it, else srv.Shutdown(ctx), with ctx
// ending at drain_timeout; at that deadline it calls srv.Stop() or
// srv.Close() if present and closes what is left. A server with neither is
// drained by waiting for it to close its connections. A Serve that returns
// on its own before the drain stops the daemon with its error (a worker
// exits, and the master starts another).
//
// On an http or https group srv must be an *http.Server. gozd serves a copy
// of it on the group's listener and keeps its settings: timeouts, Protocols,
// MaxHeaderBytes, TLSConfig (ClientAuth, ClientCAs, GetCertificate...),
// ErrorLog, BaseContext, ConnContext, ConnState, TLSNextProto, HTTP2. It
// changes only these:
//   - Handler (http.DefaultServeMux when nil) is wrapped for the drain:
//     responses that start while draining carry "Connection: close", and a
//     panic costs one request;
//   - ConnState is chained after gozd's own connection tracking;
//   - TLSConfig (https) is cloned; the group's key and cert are added when it
//     sets neither Certificates, GetCertificate nor GetConfigForClient; the
//     group's client_ca, when set, replaces ClientCAs and ClientAuth;
//   - Protocols is the group's protocols directive when the config sets one;
//     with neither, http serves HTTP/1 and https HTTP/1 and HTTP/2;
//   - ConnState and ConnContext see gozd's wrapper of each connection
//     (beneath TLS for https); its NetConn method returns the *net.TCPConn
//     or *net.UnixConn;
//   - ReadHeaderTimeout and IdleTimeout get DefaultReadHeaderTimeout and
//     DefaultIdleTimeout when they and ReadTimeout are zero; ErrorLog nil
//     means gozd's log.
//
// Addr is ignored, and srv itself is never started: its Shutdown, Close and
// RegisterOnShutdown do nothing to the copy gozd serves.
func (d *Daemon) HandleServer(group string, srv Server) error {
	if srv == nil {
		return fmt.Errorf("group %q: nil server", group)
	}
	if hs, ok := srv.(*http.Server); ok && hs == nil {
		return fmt.Errorf("group %q: nil server", group)
	}
	return d.register(group, srv)
}

// handlerKindError says why handler does not suit group g, or returns nil
// when it does.
func handlerKindError(g *GroupConfig, handler any) error {
	var want string
	switch g.Mode {
	case ModeTCP:
		switch handler.(type) {
		case func(Conn), Server:
			return nil
		}
		want = "a func(gozd.Conn) or a server value with Serve(net.Listener) error"
	case ModeUDP:
		if _, ok := handler.(func(PacketConn)); ok {
			return nil
		}
		want = "a func(gozd.PacketConn)"
	case ModeHTTP, ModeHTTPS:
		switch handler.(type) {
		case *http.Server, http.Handler:
			return nil
		}
		want = "an http.Handler, a func(http.ResponseWriter, *http.Request) or an *http.Server"
		if _, ok := handler.(Server); ok {
			want += "; a server value with Serve(net.Listener) serves a tcp group"
		}
	default: // fcgi
		if _, ok := handler.(http.Handler); ok {
			return nil
		}
		want = "an http.Handler or func(http.ResponseWriter, *http.Request)"
	}
	return fmt.Errorf("%s: %w: want %s, got %T", g, ErrHandlerKind, want, handler)
}

// startServing starts the groups gozd serves beyond its own handler kinds:
// server values on tcp groups and udp groups. It reports whether it did.
func (gs *groupServer) startServing(handler any, connCtx context.Context, wg *sync.WaitGroup) bool {
	switch h := handler.(type) {
	case Server:
		if gs.cfg.Mode != ModeTCP {
			return false // an *http.Server on an http or https group
		}
		gs.serveValue(h, connCtx, wg)
		return true
	case func(PacketConn):
		gs.servePackets(h, connCtx, wg)
		return true
	}
	return false
}

// serveValue runs srv.Serve on a listener of the group's connections, and
// drains srv once connCtx ends.
func (gs *groupServer) serveValue(srv Server, connCtx context.Context, wg *sync.WaitGroup) {
	sl := &serverListener{ln: retryingListener{Listener: gs.ln, log: gs.log}, gs: gs, asked: make(chan struct{})}
	shutdownCtx, cancel := context.WithCancel(context.Background())
	gs.server, gs.cancelShutdown = srv, cancel
	gs.serving = sl.asked
	wg.Add(1)
	go func() {
		<-connCtx.Done()
		// The accept loop of this group is over once no Accept is
		// under way: the daemon seals the tracker after that.
		sl.stop()
		wg.Done()
		gs.drainServer(shutdownCtx, srv)
	}()
	go func() {
		err := srv.Serve(sl)
		if connCtx.Err() != nil {
			return // the drain or a close made it return
		}
		if err == nil {
			err = errors.New("Serve returned")
		}
		gs.serverFailed(fmt.Errorf("%s: server %T stopped serving: %w", gs.cfg, srv, err))
	}()
}

// drainServer asks srv to stop gracefully, once it has started on every
// connection sl delivered: a server that checks for its stop before it takes
// a new connection over (as grpc-go does) would otherwise drop one accepted
// in the last moment unanswered.
func (gs *groupServer) drainServer(ctx context.Context, srv Server) {
	gs.waitTouched(touchWait)
	switch s := srv.(type) {
	case gracefulStopper:
		s.GracefulStop()
	case shutdowner:
		s.Shutdown(ctx) // ended by stopServer at drain_timeout
	}
}

// waitTouched waits up to limit until the server has read, written, closed or
// set a deadline on every connection it was given.
func (gs *groupServer) waitTouched(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && gs.untouched.Load() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
}

// stopServer is the hard stop of a server value: Stop or Close, bounded by
// closeGrace, then every connection it still has is closed.
func (gs *groupServer) stopServer() {
	gs.cancelShutdown()
	done := make(chan struct{})
	go func() {
		defer close(done)
		switch s := gs.server.(type) {
		case stopper:
			s.Stop()
		case closer:
			s.Close()
		}
	}()
	select {
	case <-done:
	case <-time.After(closeGrace):
		gs.log.Warn("server did not stop in time; closing its connections", "server", fmt.Sprintf("%T", gs.server))
	}
}

// serverFailed stops the daemon with err: a server value returned from Serve
// while it should be serving.
func (gs *groupServer) serverFailed(err error) {
	select {
	case gs.failed <- err:
	default:
	}
}

// waitServing waits until every server value has asked its listener for a
// connection, or a group failed, or the daemon stopped.
func (d *Daemon) waitServing(ctx context.Context, groups []*groupServer) error {
	for _, gs := range groups {
		if gs.serving == nil {
			continue
		}
		select {
		case <-gs.serving:
		case err := <-d.failed:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-d.draining:
			return ErrClosed
		}
	}
	return nil
}

// serverListener is the listener a server value serves: the group's
// connections, tracked, until the drain.
type serverListener struct {
	ln    net.Listener
	gs    *groupServer
	asked chan struct{} // closed at the first Accept: the server serves
	once  sync.Once

	mu        sync.Mutex
	stopped   bool
	accepting sync.WaitGroup // Accept calls under way
}

func (l *serverListener) Accept() (net.Conn, error) {
	l.once.Do(func() { close(l.asked) })
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return nil, net.ErrClosed
	}
	l.accepting.Add(1)
	l.mu.Unlock()
	defer l.accepting.Done()
	c, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	sc := &serverConn{Conn: c, gs: l.gs}
	l.gs.untouched.Add(1)
	l.gs.tracker.add(sc)
	return sc, nil
}

// stop makes Accept fail from now on and waits until no Accept is under way:
// every connection taken off the backlog is tracked then.
func (l *serverListener) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.accepting.Wait()
}

// Close is a no-op for the server: the daemon closes the group's listener at
// the drain. A server that closes its listener early (when Serve returns)
// must not take the socket from under the group.
func (l *serverListener) Close() error { return nil }

func (l *serverListener) Addr() net.Addr { return l.ln.Addr() }

// serverConn is a connection handed to a server value: tracked until the
// server closes it, and "touched" once the server has begun with it.
type serverConn struct {
	net.Conn
	gs      *groupServer
	touched atomic.Bool
	once    sync.Once
}

func (c *serverConn) touch() {
	if !c.touched.Load() && c.touched.CompareAndSwap(false, true) {
		c.gs.untouched.Add(-1)
	}
}

func (c *serverConn) Read(p []byte) (int, error)        { c.touch(); return c.Conn.Read(p) }
func (c *serverConn) Write(p []byte) (int, error)       { c.touch(); return c.Conn.Write(p) }
func (c *serverConn) SetDeadline(t time.Time) error     { c.touch(); return c.Conn.SetDeadline(t) }
func (c *serverConn) SetReadDeadline(t time.Time) error { c.touch(); return c.Conn.SetReadDeadline(t) }
func (c *serverConn) SetWriteDeadline(t time.Time) error {
	c.touch()
	return c.Conn.SetWriteDeadline(t)
}

// Close closes the connection, then tells the drain.
func (c *serverConn) Close() error {
	c.touch()
	err := c.Conn.Close()
	c.once.Do(func() { c.gs.tracker.remove(c) })
	return err
}

// NetConn returns the connection beneath (a *net.TCPConn or *net.UnixConn).
func (c *serverConn) NetConn() net.Conn { return c.Conn }

// ReadFrom, WriteTo, CloseWrite and CloseRead keep sendfile, splice and
// half-close for the server.
func (c *serverConn) ReadFrom(r io.Reader) (int64, error) { c.touch(); return readFrom(c.Conn, r) }
func (c *serverConn) WriteTo(w io.Writer) (int64, error)  { c.touch(); return writeTo(c.Conn, w) }
func (c *serverConn) CloseWrite() error                   { return closeWrite(c.Conn) }
func (c *serverConn) CloseRead() error                    { return closeRead(c.Conn) }

// newHTTPServer builds the server of an http or https group around handler:
// an http.Handler, or an *http.Server whose settings are kept (see
// HandleServer).
func (gs *groupServer) newHTTPServer(handler any) *http.Server {
	track := gs.connStateHook()
	srv := &http.Server{
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		TLSConfig:         gs.tlsConfig,
		ConnState:         track,
		ErrorLog:          serverErrorLog(gs.log),
	}
	h, isHandler := handler.(http.Handler)
	if user, ok := handler.(*http.Server); ok {
		copyServerSettings(srv, user)
		h = user.Handler
		if h == nil {
			h = http.DefaultServeMux
		}
		if user.ConnState != nil {
			srv.ConnState = func(c net.Conn, state http.ConnState) {
				track(c, state)
				user.ConnState(c, state)
			}
		}
		srv.TLSConfig = mergeTLSConfig(user.TLSConfig, gs.tlsConfig)
	} else if !isHandler {
		h = http.NotFoundHandler() // cannot happen: register checked the kind
	}
	srv.Handler = gs.closeWhenDraining(gs.withOps(h))
	if p := gs.cfg.httpProtocols(); p != nil {
		srv.Protocols = p
	}
	return srv
}

// copyServerSettings copies to srv the settings of the program's server
// user that gozd keeps.
func copyServerSettings(srv, user *http.Server) {
	srv.DisableGeneralOptionsHandler = user.DisableGeneralOptionsHandler
	srv.ReadTimeout = user.ReadTimeout
	srv.WriteTimeout = user.WriteTimeout
	if user.ReadHeaderTimeout != 0 || user.ReadTimeout != 0 {
		srv.ReadHeaderTimeout = user.ReadHeaderTimeout
	}
	if user.IdleTimeout != 0 || user.ReadTimeout != 0 {
		srv.IdleTimeout = user.IdleTimeout
	}
	srv.MaxHeaderBytes = user.MaxHeaderBytes
	srv.TLSNextProto = user.TLSNextProto
	if user.ErrorLog != nil {
		srv.ErrorLog = user.ErrorLog
	}
	srv.BaseContext = user.BaseContext
	srv.ConnContext = user.ConnContext
	srv.HTTP2 = user.HTTP2
	srv.Protocols = user.Protocols
}

// mergeTLSConfig returns the TLS config of an https group served by the
// program's *http.Server: its own (cloned), with the group's key pair when it
// brings no certificate of its own, and the group's client_ca rules; or the
// group's alone. group is nil for a group that is not https.
func mergeTLSConfig(user, group *tls.Config) *tls.Config {
	if group == nil {
		return nil
	}
	if user == nil {
		return group
	}
	c := user.Clone()
	if len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
		c.Certificates = group.Certificates
	}
	if group.ClientCAs != nil {
		c.ClientCAs, c.ClientAuth = group.ClientCAs, group.ClientAuth
	}
	return c
}

package gozd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/fcgi"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Timeouts of the HTTP servers gozd runs for http and https groups. Only the
// header read and idle waits are bounded: a handler may stream or accept an
// upload for as long as it likes, but a client that connects and sends
// nothing cannot hold a connection forever.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
)

// closeGrace bounds how long Close waits for tcp handlers to return after
// their connections were closed under them.
const closeGrace = 2 * time.Second

// A Daemon serves the groups of one Config in this process: the idiomatic
// API beneath Daemonize. Build it with New, register a handler for every
// group, then call Serve. It binds its own listeners unless it was given
// inherited ones (as in a worker started by the master).
//
// A panic in a handler of any mode costs that request only: it is logged at
// ERROR with its stack, a response not yet started is answered 500 (the
// connection serves on), and one under way is cut.
//
// A Daemon does no process management: no master, no reload, no pid file.
// Daemonize adds those.
type Daemon struct {
	cfg *Config
	log *slog.Logger

	mu        sync.Mutex
	handlers  map[string]any          // group name → http.Handler or func(Conn)
	inherited map[string]net.Listener // listeners handed over instead of bound
	complete  chan struct{}           // closed once every group has a handler
	groups    []*groupServer
	state     daemonState
	ready     chan struct{}
	draining  chan struct{}      // closed when Shutdown or Close starts
	cancel    context.CancelFunc // cancels the Context of tcp Conns
	accepting sync.WaitGroup     // the groups' accept loops
	handoff   daemonHandoff      // connections from the previous worker, to the next (handoff.go)
	failed    chan error         // a server value stopped serving on its own (servers.go)
	ops       daemonOps          // lame duck, for health checks (health.go)
	onReady   func()             // a worker's: tells its master, once serving
}

type daemonState int

const (
	stateNew daemonState = iota
	stateServing
	stateClosed
)

// New returns a Daemon for cfg, which must be valid. A nil logger means
// slog.Default().
func New(cfg *Config, logger *slog.Logger) (*Daemon, error) {
	if cfg == nil {
		return nil, errors.New("nil config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Daemon{
		cfg:      cfg,
		log:      logger,
		handlers: make(map[string]any),
		complete: make(chan struct{}),
		ready:    make(chan struct{}),
		draining: make(chan struct{}),
		failed:   make(chan error, 1),
	}, nil
}

// Config returns the configuration the daemon serves.
func (d *Daemon) Config() *Config { return d.cfg }

// Handle registers h for the http, https or fcgi group named group.
func (d *Daemon) Handle(group string, h http.Handler) error {
	if h == nil {
		return fmt.Errorf("group %q: nil handler", group)
	}
	return d.register(group, h)
}

// HandleFunc registers f for the http, https or fcgi group named group.
func (d *Daemon) HandleFunc(group string, f func(http.ResponseWriter, *http.Request)) error {
	if f == nil {
		return fmt.Errorf("group %q: nil handler", group)
	}
	return d.register(group, http.HandlerFunc(f))
}

// HandleConn registers f for the tcp group named group. f runs in its own
// goroutine for every accepted connection.
func (d *Daemon) HandleConn(group string, f func(Conn)) error {
	if f == nil {
		return fmt.Errorf("group %q: nil handler", group)
	}
	return d.register(group, f)
}

// register checks that handler suits the group's mode and that the group has
// none yet.
func (d *Daemon) register(group string, handler any) error {
	g, ok := d.cfg.Group(group)
	if !ok {
		return fmt.Errorf("group %q: %w (configured: %s)", group, ErrUnknownGroup, strings.Join(d.groupNames(), ", "))
	}
	if err := handlerKindError(g, handler); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, dup := d.handlers[group]; dup {
		return fmt.Errorf("%s: %w", g, ErrDuplicateHandler)
	}
	d.handlers[group] = handler
	if len(d.handlers) == len(d.cfg.Groups) {
		close(d.complete)
	}
	return nil
}

// missingHandlers lists the groups that have no handler yet.
func (d *Daemon) missingHandlers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var missing []string
	for _, name := range d.groupNames() {
		if _, ok := d.handlers[name]; !ok {
			missing = append(missing, name)
		}
	}
	return missing
}

func (d *Daemon) groupNames() []string {
	names := make([]string, 0, len(d.cfg.Groups))
	for _, g := range d.cfg.Groups {
		names = append(names, g.Name)
	}
	sort.Strings(names)
	return names
}

// Ready is closed once every group serves.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Draining is closed once the daemon stops accepting (Shutdown or Close), at
// the moment every tcp Conn's Context is done. In a worker it is the channel
// the package-level Draining returns.
func (d *Daemon) Draining() <-chan struct{} { return d.draining }

// Addrs returns the address each group listens on, by group name, once the
// listeners are bound (after Ready); with port 0 in the config this is where
// to find the port picked.
func (d *Daemon) Addrs() map[string]net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	addrs := make(map[string]net.Addr, len(d.groups))
	for _, gs := range d.groups {
		addrs[gs.cfg.Name] = gs.ln.Addr()
	}
	return addrs
}

// Serve binds every group's listener (or takes the inherited one), waits
// until every group has a handler, serves them all, and closes Ready. When ctx
// is done it drains as Shutdown does, bounded by the config's drain_timeout,
// and returns nil. After Shutdown or Close it returns ErrClosed. An error
// binding a listener or loading a TLS key pair is returned before anything
// serves.
func (d *Daemon) Serve(ctx context.Context) error {
	d.mu.Lock()
	if state := d.state; state != stateNew {
		d.mu.Unlock()
		if state == stateClosed {
			return ErrClosed
		}
		return ErrServing
	}
	d.state = stateServing
	d.mu.Unlock()

	groups, err := d.prepare()
	if err != nil {
		return err
	}
	connCtx, cancel := context.WithCancel(context.Background())
	d.mu.Lock()
	select {
	case <-d.draining:
		// Shutdown or Close ran while prepare bound the listeners, too
		// early to close them.
		d.mu.Unlock()
		cancel()
		for _, gs := range groups {
			gs.ln.Close()
		}
		return ErrClosed
	default:
	}
	d.groups = groups
	d.cancel = cancel
	d.mu.Unlock()

	select {
	case <-d.complete:
	case <-ctx.Done():
		d.Close()
		return nil
	case <-d.draining:
		return ErrClosed
	}

	d.mu.Lock()
	select {
	case <-d.draining:
		d.mu.Unlock()
		return ErrClosed
	default:
	}
	for _, gs := range groups {
		gs.handoff = &d.handoff
		gs.start(d.handlers[gs.cfg.Name], connCtx, &d.accepting)
		gs.serveResumed(d, d.handlers[gs.cfg.Name], connCtx, &d.accepting)
	}
	d.mu.Unlock()
	if err := d.waitServing(ctx, groups); err != nil {
		d.Close()
		if errors.Is(err, ctx.Err()) {
			return nil
		}
		return err
	}
	close(d.ready)
	if d.onReady != nil {
		d.onReady()
	}
	for _, gs := range groups {
		d.log.Debug("serving", "group", gs.cfg.Name, "mode", gs.cfg.Mode, "addr", gs.ln.Addr().String())
	}

	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), d.cfg.drainTimeout())
		defer cancel()
		d.Shutdown(sctx)
		return nil
	case <-d.draining:
		d.accepting.Wait()
		return ErrClosed
	case err := <-d.failed:
		d.log.Error("stopping", "err", err)
		sctx, cancel := context.WithTimeout(context.Background(), d.cfg.drainTimeout())
		defer cancel()
		d.Shutdown(sctx)
		return err
	}
}

// prepare makes a groupServer for every configured group, with its listener
// and, for https, its key pair loaded afresh (so a new worker picks up a
// rotated certificate). On error nothing is left open.
func (d *Daemon) prepare() ([]*groupServer, error) {
	var groups []*groupServer
	fail := func(err error) ([]*groupServer, error) {
		for _, gs := range groups {
			gs.ln.Close()
		}
		return nil, err
	}
	for i := range d.cfg.Groups {
		g := &d.cfg.Groups[i]
		gs := &groupServer{cfg: g, log: d.log.With("group", g.Name), tracker: newConnTracker(), failed: d.failed}
		gs.ops = &d.ops
		if g.Mode == ModeHTTPS {
			cert, err := tls.LoadX509KeyPair(g.Cert, g.Key)
			if err != nil {
				return fail(fmt.Errorf("%s: loading key pair: %w", g, err))
			}
			gs.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
			if err := g.applyClientCA(gs.tlsConfig); err != nil {
				return fail(err)
			}
		}
		d.mu.Lock()
		ln, ok := d.inherited[g.Name]
		d.mu.Unlock()
		if !ok {
			var err error
			if ln, err = listen(g); err != nil {
				return fail(err)
			}
		}
		gs.ln = ln
		groups = append(groups, gs)
	}
	return groups, nil
}

// Shutdown drains gracefully: every group stops accepting, Draining and the
// Context of every Conn and PacketConn are done, HTTP/2 connections get a
// GOAWAY, idle connections are closed at once, in-flight requests and tcp
// handlers run to their end (HTTP responses then carry "Connection:
// close"), and the connections close as they become idle. (In a worker
// draining for a reload, idle connections move to the new worker instead:
// see the package documentation.) Unlike http.Server.Shutdown it never closes a
// connection that has a request in flight or one that was just accepted and
// not yet read, so no request that reached this process goes unanswered.
// When ctx ends first, Shutdown closes what remains, as Close does, and
// returns ctx.Err().
func (d *Daemon) Shutdown(ctx context.Context) error {
	groups := d.stop()
	for _, gs := range groups {
		// From now on every response says "Connection: close" and idle
		// connections are closed, also while the accept loops wind down.
		gs.draining.Store(true)
		gs.tracker.drain()
		gs.h2.goAway()
	}
	// Connections taken over and still waiting for their first byte
	// move on (or close) with the other idle ones.
	d.handoff.park.drain()
	// Every connection the accept loops took is tracked by the time they
	// end; finishing before that could miss one accepted at the last
	// moment and let the process exit under it.
	d.accepting.Wait()
	for _, gs := range groups {
		gs.tracker.seal()
	}
	for _, gs := range groups {
		select {
		case <-gs.tracker.done:
		case <-ctx.Done():
			d.log.Warn("drain cut short; closing the remaining connections", "connections", d.connCount(), "held_by", d.stats().heldBy(), "err", ctx.Err())
			d.Close()
			return ctx.Err()
		}
	}
	if heir := d.handoff.heir.Load(); heir != nil {
		// The connections that left the trackers for the new worker
		// are on their way: this process must not end under them.
		heir.wait(ctx)
	}
	return nil
}

// Close stops at once: listeners and every connection are closed. It waits
// briefly for tcp handlers to return.
func (d *Daemon) Close() error {
	groups := d.stop()
	d.handoff.park.close()
	// A connection accepted at the last moment is tracked, and so closed
	// below, once the accept loops have ended.
	d.accepting.Wait()
	var wg sync.WaitGroup
	for _, gs := range groups {
		wg.Go(gs.close)
	}
	wg.Wait()
	return nil
}

// stopAccepting closes, ahead of the drain, the listeners of the groups
// whose accept loops end quietly on a closed listener: http, https and fcgi
// groups, and tcp groups with a handler. A worker told to drain stops
// taking connections (its successor takes them already) without waiting for
// its Serve goroutine to wake up and run Shutdown: that wait, and the first
// run of the drain's code in this process, kept an idle worker accepting for
// 0.4-1.7 ms (medians) after the order, and what it accepted then was
// answered by the old build. Server values and udp groups stop with the
// drain, which cancels their context first.
func (d *Daemon) stopAccepting() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, gs := range d.groups {
		if gs.server == nil && gs.cfg.Mode != ModeUDP {
			gs.ln.Close()
		}
	}
}

// stop closes the listeners once, cancels the Conn contexts and returns the
// groups to drain or close.
func (d *Daemon) stop() []*groupServer {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.draining:
	default:
		close(d.draining)
		if d.state == stateNew {
			d.state = stateClosed
		}
		if d.cancel != nil {
			d.cancel()
		}
		for _, gs := range d.groups {
			gs.ln.Close()
			gs.resumed.Close()
		}
	}
	return slices.Clone(d.groups)
}

// connCount reports the open connections of every group, for the log.
func (d *Daemon) connCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, gs := range d.groups {
		n += gs.tracker.count()
	}
	return n
}

// groupServer serves one group on its listener.
type groupServer struct {
	cfg       *GroupConfig
	log       *slog.Logger
	ln        net.Listener
	tlsConfig *tls.Config
	tracker   *connTracker

	http     *http.Server   // http and https
	draining atomic.Bool    // responses say "Connection: close"
	tcp      sync.WaitGroup // running tcp handlers (and the udp handler)

	// resumed serves the connections handed over by the previous worker
	// (handoff.go).
	resumed *resumeListener
	// h2 serves the group's HTTP/2 connections, to send GOAWAY at the
	// drain (drain_tls.go).
	h2 *goAwayServer
	// handoff and runResumedTCP move tcp connections (handoff_tcp.go).
	handoff       *daemonHandoff
	runResumedTCP func(c net.Conn, state []byte)

	// Server values (servers.go).
	server         Server             // the tcp group's server value, or nil
	serving        chan struct{}      // closed once it asks for a connection; nil: serving at start
	untouched      atomic.Int64       // connections delivered that it has not begun with
	cancelShutdown context.CancelFunc // ends its Shutdown(ctx)
	failed         chan<- error       // the daemon's: a Serve that returned on its own

	ops *daemonOps // for the health and metrics endpoints
}

// start begins serving with handler; wg is done when the accept loop ends.
func (gs *groupServer) start(handler any, connCtx context.Context, wg *sync.WaitGroup) {
	if gs.startServing(handler, connCtx, wg) { // server values, udp
		return
	}
	wg.Add(1)
	switch gs.cfg.Mode {
	case ModeTCP:
		go func() {
			defer wg.Done()
			gs.serveTCP(handler.(func(Conn)), connCtx)
		}()
	case ModeFCGI:
		go func() {
			defer wg.Done()
			ln := &fcgiListener{Listener: retryingListener{Listener: gs.ln, log: gs.log}, tracker: gs.tracker}
			err := fcgi.Serve(ln, gs.fcgiHandler(handler))
			gs.logAcceptEnd(err)
		}()
	default: // http, https
		gs.http = gs.newHTTPServer(handler)
		if gs.tlsConfig != nil {
			gs.h2 = useGoAwayServer(gs.http)
		}
		go func() {
			defer wg.Done()
			var err error
			ln := httpListener{gs.ln}
			// By mode, not by TLSConfig: net/http's HTTP/2 setup fills
			// that in for a plain server too (serveResumed runs one).
			if gs.cfg.Mode == ModeHTTPS {
				err = gs.http.ServeTLS(ln, "", "")
			} else {
				err = gs.http.Serve(ln)
			}
			gs.logAcceptEnd(err)
		}()
	}
}

func (gs *groupServer) logAcceptEnd(err error) {
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
		gs.log.Error("accept loop ended", "err", err)
	}
}

// connStateHook is the group's http.Server ConnState: trackHTTP, with the
// two calls of every request (busy, then idle, on a connection this worker
// accepted) done in the hook itself, one call fewer each.
func (gs *groupServer) connStateHook() func(net.Conn, http.ConnState) {
	t := gs.tracker
	return func(c net.Conn, state http.ConnState) {
		if hc, ok := c.(*httpConn); ok && (state == http.StateActive || state == http.StateIdle) {
			t.httpIdle(c, hc, state == http.StateIdle)
			return
		}
		gs.trackHTTP(c, state)
	}
}

// trackHTTP follows the state of the group's HTTP connections.
func (gs *groupServer) trackHTTP(c net.Conn, state http.ConnState) {
	hc := asHTTPConn(c)
	if hc == nil {
		// A connection gozd did not accept: an HTTP/2 server that a
		// handler runs on the connection it hijacked (h2c.NewHandler)
		// reports through this server's ConnState. The connection is
		// tracked already, as hijacked, until the handler closes it.
		return
	}
	switch state {
	case http.StateNew:
		gs.tracker.add(c)
	case http.StateActive:
		gs.tracker.httpIdle(c, hc, false)
	case http.StateIdle:
		gs.tracker.httpIdle(c, hc, true)
	case http.StateClosed:
		gs.tracker.remove(c)
	case http.StateHijacked:
		old, new := hc.status.change(statusHijacked, 0)
		gs.tracker.counts.recount(trackedHTTP, old, new)
		// Still open, now the handler's (a websocket, say): it stays
		// tracked, busy, until the handler closes it (hijackedConn), so
		// the drain waits for it up to drain_timeout.
	}
}

// isHTTP2 reports whether c speaks HTTP/2, whose connections linger a moment
// when idle in a drain. It is asked only while draining: it copies the TLS
// connection state.
func isHTTP2(c net.Conn) bool {
	switch hc := c.(type) {
	case *httpConn:
		return hc.h2c.Load()
	case resumedConn:
		return hc.h2c.Load()
	}
	tc, ok := c.(*tls.Conn)
	return ok && tc.ConnectionState().NegotiatedProtocol == "h2"
}

// close cuts every connection of the group.
func (gs *groupServer) close() {
	if gs.http != nil {
		gs.http.Close()
	}
	if gs.server != nil {
		gs.stopServer()
	}
	gs.tracker.closeAll()
	if gs.cfg.Mode == ModeTCP || gs.cfg.Mode == ModeUDP {
		done := make(chan struct{})
		go func() { gs.tcp.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeGrace):
			gs.log.Warn("tcp handlers still running after their connections were closed")
		}
	}
}

// serveTCP accepts connections and runs handler on each until the listener
// is closed.
func (gs *groupServer) serveTCP(handler func(Conn), connCtx context.Context) {
	ln := retryingListener{Listener: gs.ln, log: gs.log}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		conn := &tcpConn{Conn: c, ctx: connCtx, gs: gs}
		gs.tracker.add(conn)
		gs.tcp.Add(1)
		go func() {
			defer gs.tcp.Done()
			gs.handleTCP(conn, handler)
		}()
	}
}

// handleTCP runs handler on conn, tracked by the caller, until it returns;
// then the connection is closed and forgotten. A panic costs that
// connection only.
func (gs *groupServer) handleTCP(conn *tcpConn, handler func(Conn)) {
	defer func() {
		conn.Close()
		gs.tracker.remove(conn)
	}()
	defer func() {
		if r := recover(); r != nil {
			gs.log.Error("tcp handler panicked", "remote", conn.RemoteAddr().String(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	handler(conn)
}

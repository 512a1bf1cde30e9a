package gozd

import (
	"net/http"
	"sync/atomic"
	"time"
)

// daemonOps is a Daemon's state for health checks.
type daemonOps struct {
	lameDuck atomic.Bool // shutting down: health checks fail, serving goes on
	replaced atomic.Bool // draining because a newer worker serves: health stays 200
	metrics  metricsOps
}

// LameDuck starts a graceful shutdown's first phase: health endpoints
// answer 503 so that load balancers take this process out of rotation,
// while every other request is served and new connections are accepted as
// before. It does not stop anything: call Shutdown once the load balancers
// had time to notice (shutdown_delay). A daemon started by Daemonize does
// all this on SIGTERM, SIGQUIT and -s quit.
func (d *Daemon) LameDuck() {
	if !d.ops.lameDuck.Swap(true) && d.cfg.ShutdownDelay > 0 {
		d.log.Info("lame duck: health checks fail from now on; serving on until the drain", "shutdown_delay", d.cfg.ShutdownDelay)
	}
}

// replacedBy marks a drain that hands over to a newer worker, not a
// shutdown: the service as a whole keeps serving, so health checks that
// still reach this process on a kept connection say so.
func (d *Daemon) replacedBy() {
	if !d.ops.lameDuck.Load() {
		d.ops.replaced.Store(true)
	}
}

// lameDuckThenDrain is a graceful stop asked of this process: lame duck
// for shutdown_delay, then drain.
func (d *Daemon) lameDuckThenDrain(drain func()) {
	d.LameDuck()
	if delay := d.cfg.ShutdownDelay; delay > 0 {
		time.AfterFunc(delay, drain)
		return
	}
	drain()
}

// healthy reports whether this group's health endpoint answers 200.
func (gs *groupServer) healthy() (bool, string) {
	switch {
	case gs.ops == nil:
		return true, ""
	case gs.ops.lameDuck.Load():
		return false, "shutting down"
	case gs.draining.Load() && !gs.ops.replaced.Load():
		return false, "draining"
	}
	return true, ""
}

// withOps answers the group's health (and metrics) paths before the
// program's handler sees the request.
func (gs *groupServer) withOps(h http.Handler) http.Handler {
	if gs.cfg.Health == "" && gs.cfg.Metrics == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A path left unset is "", which a request's own (an
		// absolute-form target without a path) must not match.
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			switch p := r.URL.Path; {
			case p == gs.cfg.Health && p != "":
				gs.serveHealth(w)
				return
			case p == gs.cfg.Metrics && p != "":
				gs.serveMetrics(w)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// serveHealth answers a health check: 200 "ok" while serving, 503 in the
// lame duck and while draining for a shutdown.
func (gs *groupServer) serveHealth(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	ok, why := gs.healthy()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(why + "\n"))
		return
	}
	w.Write([]byte("ok\n"))
}

package gozd

// neverDraining is the Draining channel of a process that serves nothing.
var neverDraining = make(chan struct{})

// Draining returns a channel that is closed when this worker begins to
// drain: at a reload once the new worker serves, and at a graceful stop. It
// closes at the same moment as the Context of every tcp Conn is done.
//
// Handlers that hold a connection beyond a request — a hijacked websocket, a
// streaming response, a long poll — select on it to finish their exchange
// and say goodbye (a websocket close frame 1012, an SSE retry) instead of
// being cut when drain_timeout runs out. Plain requests need not: they end
// on their own and their connections move to the new worker or close.
//
// Outside a worker (before Daemonize, or in the master) the channel never
// closes.
func Draining() <-chan struct{} {
	std.mu.Lock()
	d := std.d
	std.mu.Unlock()
	if d == nil {
		return neverDraining
	}
	return d.Draining()
}

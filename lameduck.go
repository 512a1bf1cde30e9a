package gozd

import "time"

// msgLameDuck: master → worker: answer health checks 503 from now on, and
// serve everything else as before; "drain" follows. The master sends it at
// every graceful stop, before "drain", so that a worker tells a drain for a
// shutdown (health 503) from one for a reload (health stays 200).
const msgLameDuck = "lameduck"

// lameDuck states of the master.
const (
	lameDuckNone = iota
	lameDuckOn   // health checks fail, workers serve on for shutdown_delay
	lameDuckOver // the drain runs
)

// lameDuckFirst begins a graceful stop (how "quit") with the lame duck:
// systemd hears STOPPING=1, the workers answer health checks 503 and serve
// on, and the listeners stay open, for shutdown_delay; then lameDuckEnd
// drains. It reports whether shutdown must wait for that. A fast stop
// skips the lame duck, also one already under way, and so does a daemon
// that never served: no load balancer sends it anything.
func (m *master) lameDuckFirst(how string) bool {
	if how != "quit" || m.stopping != "" || m.ops.lameDuck == lameDuckOver || !m.everReady {
		return false
	}
	if m.ops.lameDuck == lameDuckOn {
		m.log.Info("already shutting down: in the lame duck until shutdown_delay is over; -s stop stops at once")
		return true
	}
	m.notify.stopping()
	for _, w := range m.workers {
		w.send(msgLameDuck)
	}
	delay := m.cfg.ShutdownDelay
	if delay <= 0 {
		m.ops.lameDuck = lameDuckOver
		return false
	}
	m.ops.lameDuck = lameDuckOn
	m.log.Info("lame duck: health checks fail, serving on until shutdown_delay is over, then draining", "shutdown_delay", delay)
	time.AfterFunc(delay, func() { m.events <- event{kind: evLameDuckEnd} })
	m.saveStatus()
	return true
}

// lameDuckEnd drains once shutdown_delay is over, unless a fast stop came
// first.
func (m *master) lameDuckEnd() {
	if m.ops.lameDuck != lameDuckOn {
		return
	}
	m.ops.lameDuck = lameDuckOver
	if m.stopping == "" {
		m.shutdown("quit")
	}
}

// inLameDuck reports whether the master is in the lame duck, where a
// reload is refused: the daemon is on its way out.
func (m *master) inLameDuck() bool { return m.ops.lameDuck == lameDuckOn }

package gozd

// msgLameDuck: master → worker: answer health checks 503 from now on, and
// serve everything else as before; "drain" follows.
const msgLameDuck = "lameduck"

// lameDuckEnd drains once shutdown_delay is over.
func (m *master) lameDuckEnd() {}

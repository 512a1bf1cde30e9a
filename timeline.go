package gozd

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// A reload's time, step by step, in the master's "worker ready" line:
//
//	signal_to_fork  the SIGHUP handled (or the queued reload begun) until the
//	                new worker's process exists: reading the config, binding
//	                what it adds, the fork and exec
//	exec_to_main    until the program's main called Daemonize: the dynamic
//	                loader, the Go runtime's start and every package's init,
//	                the program's and its libraries', gozd's own part small
//	main_to_ready   until the master has the worker's ready: the program
//	                registering its handlers, every group accepting
//
// What follows the ready, the old worker told to drain, is in the master's
// "worker draining" line: after= from the drain order until the old
// worker's reply, sent once its listeners are closed (master.go).
//
// The worker tells when its Daemonize began (msgTimeline, wall clock: both
// processes read the same one), if its master asks (handover.Timeline): an
// older master would take the message for a bad one.
const msgTimeline = "timeline" // worker → master: timeline {"main": unix ns}

// daemonizeBegan is when this process entered Daemonize.
var daemonizeBegan time.Time

// timelineMsg is the worker's msgTimeline.
func timelineMsg() controlMsg {
	// Not encoding/json: its encoder would run here for the first time in
	// this process, on a reload's path.
	return controlMsg{kind: msgTimeline, payload: `{"main":` + strconv.FormatInt(daemonizeBegan.UnixNano(), 10) + "}"}
}

// takeTimeline records a worker's msgTimeline.
func (w *worker) takeTimeline(payload string) error {
	var t struct {
		Main int64 `json:"main"`
	}
	if err := json.Unmarshal([]byte(payload), &t); err != nil {
		return err
	}
	if t.Main <= 0 {
		return fmt.Errorf("bad main time %d", t.Main)
	}
	w.mainAt = time.Unix(0, t.Main)
	return nil
}

// timelineAttrs are the steps of w's start for its "worker ready" line:
// the exec and main steps for any start whose worker said when its main
// began, the first one for a reload.
func (w *worker) timelineAttrs(now time.Time) []any {
	if w.mainAt.IsZero() || w.mainAt.Before(w.started.Add(-time.Second)) {
		return nil // an older binary, or a clock stepped back meanwhile
	}
	var attrs []any
	if !w.asked.IsZero() {
		attrs = append(attrs, "signal_to_fork", w.started.Sub(w.asked).Round(time.Microsecond))
	}
	return append(attrs,
		"exec_to_main", max(w.mainAt.Sub(w.started), 0).Round(time.Microsecond),
		"main_to_ready", max(now.Sub(w.mainAt), 0).Round(time.Microsecond))
}

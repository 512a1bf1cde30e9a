package gozd

// The master's part in handing connections over between workers (see
// handoff.go): it makes each new worker's inbox, a SOCK_SEQPACKET socket
// pair, gives the worker one end at its start, and once the worker is ready
// passes the other end to the worker it replaces, with the "drain" order.
// Connections then go from worker to worker directly, never through the
// master.

import (
	"log/slog"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// workerInbox is the master's end of a worker's inbox, held from the
// worker's start until it is passed to the worker it replaces.
type workerInbox struct {
	tx int // -1 once closed
	rx int // the worker's end; the master closes its copy after the start
}

// addInbox makes a worker's inbox and adds its end to the descriptors the
// worker inherits. Without one (the socket pair failed) the worker takes no
// connections over, which costs only the handoff: nil is returned.
func addInbox(h *handover, files *[]uintptr, log *slog.Logger) *workerInbox {
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Warn("handoff socket: connections will not move to the new worker", "err", err)
		return nil
	}
	h.Inbox = len(*files)
	*files = append(*files, uintptr(sp[1]))
	return &workerInbox{tx: sp[0], rx: sp[1]}
}

// started closes the master's copy of the worker's end, and on a failed
// start the master's end too.
func (in *workerInbox) started(ok bool) {
	if in == nil {
		return
	}
	unix.Close(in.rx)
	if !ok {
		in.close()
	}
}

func (in *workerInbox) close() {
	if in != nil && in.tx >= 0 {
		unix.Close(in.tx)
		in.tx = -1
	}
}

// sendDrain tells w to drain. If the current worker (w's heir) has an
// inbox, its end goes with the order, so w can hand its connections over.
func (m *master) sendDrain(w *worker) {
	heir := m.current
	uc, ok := w.ctl.(*net.UnixConn)
	if heir == nil || heir == w || heir.inbox == nil || heir.inbox.tx < 0 || !ok {
		w.send("drain")
		return
	}
	uc.SetWriteDeadline(time.Now().Add(time.Second))
	if _, _, err := uc.WriteMsgUnix([]byte("drain\n"), unix.UnixRights(heir.inbox.tx), nil); err != nil {
		m.log.Warn("telling the old worker to drain failed", "worker", w.pid, "gen", w.gen, "err", err)
	}
}

package gozd

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type workerState int

const (
	workerStarting workerState = iota
	workerServing
	workerDraining
)

// worker is a child process seen from the master.
type worker struct {
	pid     int
	gen     int
	cfg     *Config
	acct    *account                 // the account it runs as; nil for the master's own
	held    map[string]*heldListener // the listeners it serves
	added   []*heldListener          // bound for it, closed if it fails
	state   workerState
	began   int // the SIGHUP count when the reload that started it began; -1 for none
	ctl     net.Conn
	started time.Time
	drained time.Time // when it was told to drain
	timer   *time.Timer
	late    bool      // killed for not being ready within ready_timeout
	asked   time.Time // when the reload that started it began; zero for none
	mainAt  time.Time // when its main called Daemonize, as it said (timeline.go)
	tail    *tailBuffer
	outDone chan struct{}
	inbox   *workerInbox // where the worker it replaces hands connections over (handoff_master.go)
	report  workerReport // what it said of its build and connections
}

func (w *worker) String() string { return fmt.Sprintf("worker %d (pid %d)", w.gen, w.pid) }

// send writes an order to the worker. The socket's buffer takes it at once
// unless the worker has stopped reading its orders; the master does not wait
// long for one that has.
func (w *worker) send(order string) {
	w.ctl.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(w.ctl, "%s\n", order)
}

func (w *worker) stopTimer() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// spawn starts a worker: the program's binary at the path it was started
// from, same arguments, environment and directory, as acct, with the
// listeners, a control socket and a pipe for its output. It looks nothing up
// (acct was resolved off the master's loop): the loop must not wait on NSS.
func (m *master) spawn(cfg *Config, acct *account, held map[string]*heldListener, added []*heldListener) (*worker, error) {
	m.gen++
	h := &handover{Generation: m.gen, Config: cfg, Listeners: make(map[string]int), Verbose: m.opts.verbose, Reports: true, Nice: m.prio.workerNice(), Timeline: true}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		unix.Close(sp[0])
		unix.Close(sp[1])
		return nil, err
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		unix.Close(sp[0])
		unix.Close(sp[1])
		outR.Close()
		outW.Close()
		return nil, err
	}
	// Fd on the pipe and /dev/null is harmless: only listening sockets
	// must keep their non-blocking mode.
	files := []uintptr{devnull.Fd(), outW.Fd(), outW.Fd(), uintptr(sp[1])}
	for i := range cfg.Groups {
		g := &cfg.Groups[i]
		h.Listeners[g.Name] = len(files)
		files = append(files, uintptr(held[listenKey(g)].fd))
	}
	inbox := addInbox(h, &files, m.log)
	pid := 0
	env, err := workerEnv(h)
	if err == nil {
		pid, err = syscall.ForkExec(m.exe, m.args, &syscall.ProcAttr{
			Dir:   m.dir,
			Env:   env,
			Files: files,
			// Its own process group: a Ctrl-C in the terminal
			// reaches the master alone, which then tells the
			// workers what to do.
			Sys: &syscall.SysProcAttr{Setpgid: true, Credential: credential(acct)},
		})
	}
	devnull.Close()
	outW.Close()
	unix.Close(sp[1])
	inbox.started(err == nil)
	if err != nil {
		unix.Close(sp[0])
		outR.Close()
		return nil, fmt.Errorf("starting %s: %w", m.exe, err)
	}
	ctlFile := os.NewFile(uintptr(sp[0]), "gozd-control")
	ctl, err := net.FileConn(ctlFile)
	ctlFile.Close()
	if err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		outR.Close()
		inbox.close()
		return nil, err
	}
	w := &worker{
		pid: pid, gen: m.gen, began: -1, cfg: cfg, acct: acct, held: held, added: added,
		ctl: ctl, started: time.Now(), tail: &tailBuffer{max: tailSize}, outDone: make(chan struct{}), inbox: inbox,
	}
	m.workers[w.pid] = w
	go m.copyOutput(w, outR)
	go m.readControl(w)
	w.timer = time.AfterFunc(cfg.readyTimeout(), func() { m.events <- event{kind: evReadyTimeout, w: w} })
	m.log.Info("worker started", "worker", w.pid, "gen", w.gen, "exe", m.exe)
	return w, nil
}

// readControl turns a worker's messages into events.
func (m *master) readControl(w *worker) {
	sc := bufio.NewScanner(w.ctl)
	sc.Buffer(make([]byte, 0, lineBufferStart), maxControlLine)
	for sc.Scan() {
		msg, err := parseControlMsg(sc.Text())
		if err != nil {
			m.log.Warn("ignoring a message from a worker", "worker", w.pid, "gen", w.gen, "err", err)
			continue
		}
		switch msg.kind {
		case msgReady:
			m.events <- event{kind: evReady, w: w}
		case msgDraining:
			m.events <- event{kind: evDraining, w: w, n: msg.connections, at: time.Now()}
		default:
			if ev, ok := m.reportEvent(w, msg); ok {
				m.events <- ev
			}
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, net.ErrClosed) {
		// The worker's exit tells the rest; its messages are lost. (A
		// closed connection is the master's own doing, once the worker
		// has exited.)
		m.log.Error("reading a worker's messages failed", "worker", w.pid, "gen", w.gen, "err", err)
	}
}

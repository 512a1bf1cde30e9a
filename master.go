package gozd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of the master's waits that the config does not set.
const (
	killGrace      = 5 * time.Second // past drain_timeout before a worker is killed: its forced close (closeGrace) and the program's own cleanup after <-daemonChan
	stopTimeout    = 3 * time.Second // -s stop: how long workers get before SIGKILL
	maxRestartWait = 5 * time.Second
	tailSize       = 4 << 10 // bytes of a failed worker's output quoted in the log
)

// master holds the listeners and the pid, starts workers and replaces them.
// All its state belongs to the goroutine running loop; other goroutines only
// send events.
type master struct {
	opts    *options
	cfg     *Config // the config the current worker serves
	log     *slog.Logger
	exe     string
	args    []string
	dir     string
	pidfile *pidFile
	status  *statusFile
	notify  *notifier
	report  func(msg string, err error) // tells the launcher how the first start went; nil once done

	held     map[string]*heldListener // by listenKey
	workers  map[int]*worker          // every live child, by pid
	current  *worker
	starting *worker
	gen      int
	restarts int // consecutive crashes of the current worker

	hups         int // SIGHUPs received, for -s reload to find its reload
	reloadQueued bool
	stopping     string // "", "quit" or "stop"
	exitCode     int
	everReady    bool // a worker has served; until then a failure ends the master

	events chan event
}

// heldListener is a listening socket the master keeps open across workers.
type heldListener struct {
	key string
	g   GroupConfig // the group it was bound for
	ln  net.Listener
	fd  int // close-on-exec duplicate handed to workers

	inherited bool // passed by socket activation: its socket file is the passer's, not ours to remove

	closed bool // close ran: the fd number may belong to another file now
}

// listenKey identifies a listener across reloads: a group whose address is
// unchanged keeps its socket. An address with port 0 ("any free port") names
// no particular socket, so there the group's name keys it.
func listenKey(g *GroupConfig) string {
	if (g.Network == "tcp" || g.Network == "udp") && strings.HasSuffix(g.Address, ":0") {
		return g.Network + " " + g.Address + " " + g.Name
	}
	return g.Network + " " + g.Address
}

func (h *heldListener) close() {
	if h.closed {
		return
	}
	h.closed = true
	// bind closed h.ln already (without unlinking): fd is the socket. The
	// master owns unix socket files and removes them itself, here, once no
	// worker will use the socket again.
	unix.Close(h.fd)
	if h.g.Network == "unix" && !h.inherited {
		os.Remove(h.g.Address)
	}
}

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
	held    map[string]*heldListener // the listeners it serves
	added   []*heldListener          // bound for it, closed if it fails
	state   workerState
	began   int // the SIGHUP count when the reload that started it began; -1 for none
	ctl     net.Conn
	started time.Time
	drained time.Time // when it was told to drain
	timer   *time.Timer
	late    bool // killed for not being ready within ready_timeout
	tail    *tailBuffer
	outDone chan struct{}
}

func (w *worker) String() string { return fmt.Sprintf("worker %d (pid %d)", w.gen, w.pid) }

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

type eventKind int

const (
	evSignal eventKind = iota
	evReady
	evDraining
	evReadyTimeout
	evDrainTimeout
	evRestart
)

type event struct {
	kind eventKind
	sig  os.Signal
	w    *worker
	n    int
}

// runMaster is the master's life: bind, start the first worker, then serve
// signals until told to stop. It returns the process's exit status.
func runMaster(opts *options, cfg *Config, log *slog.Logger, report func(string, error)) int {
	m := &master{
		opts:    opts,
		cfg:     cfg,
		log:     log,
		exe:     opts.exe,
		args:    os.Args,
		report:  report,
		held:    make(map[string]*heldListener),
		workers: make(map[int]*worker),
		events:  make(chan event, 64),
		notify:  newNotifier(log),
	}
	fail := func(err error) int {
		m.log.Error("start failed", "err", err)
		if m.report != nil {
			m.report("", err)
		}
		return 1
	}
	var err error
	if m.dir, err = os.Getwd(); err != nil {
		return fail(err)
	}
	if cfg.MaxFDs > 0 {
		if err := setMaxFDs(cfg.MaxFDs); err != nil {
			return fail(fmt.Errorf("%s: %w", cfg.File, err))
		}
	}
	if err := checkAccounts(cfg); err != nil {
		return fail(err)
	}
	if m.pidfile, err = lockPidFile(cfg); err != nil {
		return fail(err)
	}
	defer m.pidfile.remove()
	if m.status, err = openStatusFile(statePath(m.pidfile.path)); err != nil {
		return fail(err)
	}
	defer m.status.remove()
	if m.status.master == nil {
		m.log.Warn("/proc does not say which executable and start time this master has: -s will refuse to signal it", "state", m.status.path)
	}

	// Whoever reads a foreground master's stderr may go away (a pipe into a
	// logger that died): a write error is better than dying of SIGPIPE and
	// taking every worker down with it.
	signal.Ignore(syscall.SIGPIPE)
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGCHLD)
	go func() {
		for s := range sigs {
			m.events <- event{kind: evSignal, sig: s}
		}
	}()

	activated, err := activationListeners(cfg)
	if err != nil {
		return fail(err)
	}
	held, added, err := m.bind(cfg, activated)
	if err != nil {
		return fail(err)
	}
	m.held = held
	defer m.closeListeners()
	w, err := m.spawn(cfg, held, added)
	if err != nil {
		return fail(err)
	}
	m.starting = w
	m.saveStatus()
	return m.loop()
}

// loop handles events until every worker is gone after a stop.
func (m *master) loop() int {
	for {
		ev := <-m.events
		switch ev.kind {
		case evSignal:
			m.signal(ev.sig)
		case evReady:
			m.ready(ev.w)
		case evDraining:
			m.log.Info("worker draining", "worker", ev.w.pid, "gen", ev.w.gen, "connections", ev.n)
		case evReadyTimeout:
			if ev.w == m.starting {
				m.log.Error("new worker not ready in time; killing it", "worker", ev.w.pid, "gen", ev.w.gen, "ready_timeout", ev.w.cfg.readyTimeout())
				ev.w.late = true
				syscall.Kill(ev.w.pid, syscall.SIGKILL)
			}
		case evDrainTimeout:
			if m.workers[ev.w.pid] == ev.w {
				m.log.Warn("worker outlived its drain; killing it", "worker", ev.w.pid, "gen", ev.w.gen)
				syscall.Kill(ev.w.pid, syscall.SIGKILL)
			}
		case evRestart:
			if m.current == nil && m.starting == nil && m.stopping == "" {
				if m.reloadQueued {
					// A reload asked meanwhile reads the config
					// afresh; a restart would not.
					m.reloadQueued = false
					m.reload()
				} else {
					m.startWorker(m.cfg, m.held, nil)
				}
			}
		}
		if m.stopping != "" && len(m.workers) == 0 {
			m.log.Info("stopped")
			return m.exitCode
		}
	}
}

// signal handles one signal.
func (m *master) signal(sig os.Signal) {
	switch sig {
	case syscall.SIGCHLD:
		m.reap()
	case syscall.SIGHUP:
		m.hups++
		m.log.Info("reload asked")
		m.reload()
		// -s reload reads the HUP count to tell its reload from one
		// already under way: it must include this one at once.
		m.saveStatus()
	case syscall.SIGUSR1:
		m.reopen()
	case syscall.SIGQUIT, syscall.SIGTERM:
		m.shutdown("quit")
	case syscall.SIGINT:
		m.shutdown("stop")
	}
}

// reload re-reads the config and starts a worker for it, unless one is
// starting already: then the reload waits its turn, so that however many
// HUPs arrive, one reload follows the last of them.
func (m *master) reload() {
	if m.stopping != "" {
		return
	}
	if m.starting != nil {
		m.reloadQueued = true
		m.log.Info("reload queued behind the one under way")
		return
	}
	m.notify.reloading()
	began := m.hups
	cfg, err := LoadConfig(m.opts.config)
	if err == nil {
		err = checkAccounts(cfg)
	}
	if err != nil {
		m.log.Error("reload failed: config not loaded; the current worker, if any, keeps serving", "err", err)
		m.finishReload(began, nil, err)
		m.scheduleRestart() // only if no worker serves
		return
	}
	if pidPath(cfg) != m.pidfile.path {
		m.log.Warn("pidfile changed; it takes effect when the daemon is restarted, not on reload", "pidfile", m.pidfile.path, "new", pidPath(cfg))
	}
	if cfg.MaxFDs != m.cfg.MaxFDs {
		m.log.Warn("maxfds changed; it takes effect when the daemon is restarted, not on reload", "maxfds", m.cfg.MaxFDs, "new", cfg.MaxFDs)
	}
	held, added, err := m.bind(cfg, nil)
	if err != nil {
		m.log.Error("reload failed; the current worker, if any, keeps serving", "err", err)
		m.finishReload(began, nil, err)
		m.scheduleRestart() // only if no worker serves
		return
	}
	w := m.startWorker(cfg, held, added)
	if w != nil {
		w.began = began
	}
}

// startWorker spawns a worker for cfg and makes it the starting one.
func (m *master) startWorker(cfg *Config, held map[string]*heldListener, added []*heldListener) *worker {
	w, err := m.spawn(cfg, held, added)
	if err != nil {
		for _, h := range added {
			h.close()
		}
		m.log.Error("starting a worker failed; the current worker, if any, keeps serving", "err", err)
		m.finishReload(m.hups, nil, err)
		m.scheduleRestart()
		return nil
	}
	m.starting = w
	return w
}

// bind returns the listeners cfg needs: the ones held already whose address
// is unchanged, then inherited ones (socket activation), then new ones.
// added are the ones bound now, for the caller to close if the worker that
// was to use them fails. Once all are bound, the socket files of kept unix
// listeners get cfg's chmod and owner if they changed.
func (m *master) bind(cfg *Config, activated map[string]net.Listener) (held map[string]*heldListener, added []*heldListener, err error) {
	held = make(map[string]*heldListener, len(cfg.Groups))
	var kept []*GroupConfig
	for i := range cfg.Groups {
		g := &cfg.Groups[i]
		key := listenKey(g)
		if h, ok := m.held[key]; ok {
			held[key] = h
			kept = append(kept, g)
			continue
		}
		ln, ok := activated[g.Name]
		if ok {
			m.log.Info("using the socket passed by systemd", "group", g.Name, "addr", ln.Addr().String())
		} else if ln, err = listen(g); err != nil {
			if g.Line > 0 {
				err = fmt.Errorf("%s:%d: %w", cfg.File, g.Line, err)
			}
			break
		}
		fd, derr := dupListenerFD(ln)
		if derr != nil {
			ln.Close()
			err = fmt.Errorf("%s: %w", g, derr)
			break
		}
		if ul, ok := ln.(interface{ SetUnlinkOnClose(bool) }); ok {
			ul.SetUnlinkOnClose(false)
		}
		// Hold the socket by the raw duplicate only: a listener left in the
		// master's netpoller wakes the master on every incoming connection.
		ln.Close()
		h := &heldListener{key: key, g: *g, ln: ln, fd: fd, inherited: activated[g.Name] != nil}
		held[key] = h
		added = append(added, h)
	}
	if err != nil {
		for _, h := range added {
			h.close()
		}
		return nil, nil, err
	}
	for _, g := range kept {
		h := held[listenKey(g)]
		if h.g.Chmod == g.Chmod && h.g.Owner == g.Owner {
			continue
		}
		if h.inherited {
			m.log.Warn("chmod and owner of a socket passed by systemd are set by its socket unit (SocketMode=, SocketUser=, SocketGroup=); not changing them", "group", g.Name, "path", g.Address)
			h.g.Chmod, h.g.Owner = g.Chmod, g.Owner // say it once
			continue
		}
		ul, ok := h.ln.(*unixListener)
		if !ok {
			continue // not a unix socket file of ours
		}
		if err := ul.updateSocketFile(&h.g, g); err != nil {
			m.log.Error("socket file not updated to the new chmod and owner", "group", g.Name, "path", g.Address, "err", err)
			continue
		}
		h.g.Chmod, h.g.Owner = g.Chmod, g.Owner
		m.log.Info("socket file updated to the new chmod and owner", "group", g.Name, "path", g.Address, "chmod", fmt.Sprintf("%#o", uint32(g.Chmod)), "owner", g.Owner)
	}
	return held, added, nil
}

// spawn starts a worker: the program's binary at the path it was started
// from, same arguments, environment and directory, with the listeners, a
// control socket and a pipe for its output.
func (m *master) spawn(cfg *Config, held map[string]*heldListener, added []*heldListener) (*worker, error) {
	m.gen++
	h := &handover{Generation: m.gen, Config: cfg, Listeners: make(map[string]int), Verbose: m.opts.verbose}
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
	pid := 0
	env, err := workerEnv(h)
	if err == nil {
		var cred *syscall.Credential
		if cred, err = credential(cfg); err == nil {
			pid, err = syscall.ForkExec(m.exe, m.args, &syscall.ProcAttr{
				Dir:   m.dir,
				Env:   env,
				Files: files,
				// Its own process group: a Ctrl-C in the terminal
				// reaches the master alone, which then tells the
				// workers what to do.
				Sys: &syscall.SysProcAttr{Setpgid: true, Credential: cred},
			})
		}
	}
	devnull.Close()
	outW.Close()
	unix.Close(sp[1])
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
		return nil, err
	}
	w := &worker{
		pid: pid, gen: m.gen, began: -1, cfg: cfg, held: held, added: added,
		ctl: ctl, started: time.Now(), tail: &tailBuffer{max: tailSize}, outDone: make(chan struct{}),
	}
	m.workers[w.pid] = w
	go m.copyOutput(w, outR)
	go m.readControl(w)
	w.timer = time.AfterFunc(cfg.readyTimeout(), func() { m.events <- event{kind: evReadyTimeout, w: w} })
	m.log.Info("worker started", "worker", w.pid, "gen", w.gen, "exe", m.exe)
	return w, nil
}

// copyOutput copies a worker's stdout and stderr into the log, line by line
// so that lines of several processes do not interleave, and keeps the tail
// for the log message if the worker fails.
func (m *master) copyOutput(w *worker, r io.ReadCloser) {
	defer close(w.outDone)
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			w.tail.Write(line)
			os.Stderr.Write(line) // one write a line: lines of several processes do not mix
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// readControl turns a worker's messages into events.
func (m *master) readControl(w *worker) {
	sc := bufio.NewScanner(w.ctl)
	for sc.Scan() {
		msg, arg, _ := strings.Cut(sc.Text(), " ")
		switch msg {
		case "ready":
			m.events <- event{kind: evReady, w: w}
		case "draining":
			n, _ := strconv.Atoi(arg)
			m.events <- event{kind: evDraining, w: w, n: n}
		}
	}
}

// ready promotes a starting worker to current and drains the previous one.
func (m *master) ready(w *worker) {
	// A worker already killed for being late, or told to stop, is not
	// promoted by a "ready" that was on its way.
	if w != m.starting || w.late || m.stopping != "" {
		return
	}
	w.stopTimer()
	m.starting = nil
	w.state = workerServing
	old := m.current
	m.current = w
	m.cfg = w.cfg
	took := time.Since(w.started)
	m.everReady = true
	if old != nil {
		m.drain(old)
	}
	// Listeners no group uses any more go only after the old worker was
	// told to stop accepting on them.
	for key, h := range m.held {
		if _, ok := w.held[key]; !ok {
			m.log.Info("listener closed", "group", h.g.Name, "addr", h.ln.Addr().String())
			h.close()
		}
	}
	m.held = w.held
	m.log.Info("worker ready", "worker", w.pid, "gen", w.gen, "after", took.Round(time.Microsecond))
	if w.began >= 0 {
		m.finishReload(w.began, old, nil)
	}
	m.saveStatus()
	m.notify.ready()
	if m.report != nil {
		m.report(m.startLine(), nil)
		m.report = nil
	}
	if m.reloadQueued {
		m.reloadQueued = false
		m.reload()
	}
}

// drain tells w to stop accepting and finish, and kills it if it is not gone
// by drain_timeout plus a grace.
func (m *master) drain(w *worker) {
	if w.state == workerDraining {
		return
	}
	w.state = workerDraining
	w.drained = time.Now()
	w.stopTimer()
	w.send("drain")
	w.timer = time.AfterFunc(w.cfg.drainTimeout()+killGrace, func() { m.events <- event{kind: evDrainTimeout, w: w} })
}

// reap collects every exited child. The master may be PID 1 in a container,
// so children it did not start are reaped too.
func (m *master) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		if w, ok := m.workers[pid]; ok {
			delete(m.workers, pid)
			m.exited(w, ws)
		}
	}
}

func exitDescription(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// exited deals with a worker that is gone.
func (m *master) exited(w *worker, ws unix.WaitStatus) {
	w.stopTimer()
	w.ctl.Close()
	how := exitDescription(ws)
	switch {
	case w.state == workerDraining:
		m.log.Info("old worker exited", "worker", w.pid, "gen", w.gen, "after", time.Since(w.drained).Round(time.Microsecond), "status", how)
	case w == m.starting:
		m.starting = nil
		for _, h := range w.added {
			h.close()
		}
		// Let the last lines the worker wrote reach the log first.
		select {
		case <-w.outDone:
		case <-time.After(500 * time.Millisecond):
		}
		if w.late {
			how = fmt.Sprintf("not ready within ready_timeout %s, %s", w.cfg.readyTimeout(), how)
		}
		err := fmt.Errorf("new worker %d (pid %d) failed before it was ready: %s", w.gen, w.pid, how)
		if out := w.tail.String(); out != "" {
			err = fmt.Errorf("%w; its last output:\n%s", err, out)
		}
		if m.stopping == "" && m.everReady {
			if m.current != nil {
				m.log.Error("reload failed; the current worker keeps serving", "worker", w.pid, "gen", w.gen, "status", how, "output", w.tail.String())
			} else {
				m.log.Error("new worker failed and no worker is serving; new connections wait in the backlog", "worker", w.pid, "gen", w.gen, "status", how, "output", w.tail.String())
			}
		}
		if !m.everReady {
			// The first start: nothing to keep serving.
			m.log.Error("start failed", "err", err)
			if m.report != nil {
				m.report("", err)
				m.report = nil
			}
			m.exitCode = 1
			m.shutdown("stop")
			return
		}
		m.finishReload(w.began, nil, err)
		if m.current == nil {
			m.scheduleRestart()
		} else if m.reloadQueued {
			m.reloadQueued = false
			m.reload()
		}
	case w == m.current:
		m.current = nil
		if m.stopping != "" {
			return
		}
		m.log.Error("worker died; restarting it", "worker", w.pid, "gen", w.gen, "status", how, "uptime", time.Since(w.started).Round(time.Millisecond))
		if time.Since(w.started) > 10*time.Second {
			m.restarts = 0
		}
		m.scheduleRestart()
	}
	m.saveStatus()
}

// scheduleRestart starts a worker again after a backoff that grows with
// consecutive failures; meanwhile the master still holds the listeners, so
// new connections wait in the backlog instead of being refused.
func (m *master) scheduleRestart() {
	if m.stopping != "" || m.current != nil {
		return
	}
	wait := min(100*time.Millisecond<<min(m.restarts, 10), maxRestartWait)
	m.restarts++
	m.log.Warn("starting a new worker", "in", wait, "attempt", m.restarts)
	time.AfterFunc(wait, func() { m.events <- event{kind: evRestart} })
}

// shutdown stops every worker, gracefully (quit) or now (stop).
func (m *master) shutdown(how string) {
	if m.stopping == "stop" || m.stopping == how {
		if how == "stop" {
			// A second Ctrl-C: no more waiting.
			for pid := range m.workers {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return
	}
	m.stopping = how
	m.notify.stopping()
	m.log.Info("shutting down", "how", how)
	for _, w := range m.workers {
		w.stopTimer()
		wait := stopTimeout
		if how == "quit" {
			w.state = workerDraining
			w.drained = time.Now()
			w.send("drain")
			wait = w.cfg.drainTimeout() + killGrace
		} else {
			w.send("stop")
		}
		w.timer = time.AfterFunc(wait, func() { m.events <- event{kind: evDrainTimeout, w: w} })
	}
	// Stop accepting now. The workers close their copies as they drain;
	// were the master to keep its own, the kernel would go on queueing
	// connections that no process accepts, until the master exits.
	m.closeListeners()
	if m.starting != nil {
		for _, h := range m.starting.added {
			h.close()
		}
	}
}

// reopen reopens the log file for logrotate. Workers write through the
// master, so this is all it takes.
func (m *master) reopen() {
	if m.opts.foreground {
		m.log.Info("reopen: logging to stderr in the foreground, nothing to reopen")
		return
	}
	err := redirectOutput(m.cfg)
	if err != nil {
		m.log.Error("reopen failed", "err", err)
		return
	}
	m.log.Info("log reopened")
}

// closeListeners closes every listener and removes the unix socket files: the
// master is done.
func (m *master) closeListeners() {
	for _, h := range m.held {
		h.close()
	}
	m.held = nil
}

// startLine is what the launching command prints once the daemon serves.
func (m *master) startLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "gozd: started, pid %d", os.Getpid())
	for i := range m.cfg.Groups {
		g := &m.cfg.Groups[i]
		fmt.Fprintf(&b, "; %s %s on %s", g.Name, g.Mode, m.held[listenKey(g)].ln.Addr())
	}
	return b.String()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimRight(string(t.buf), "\n")
}

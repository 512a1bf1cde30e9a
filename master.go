package gozd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of the master's waits that the config does not set.
const (
	killGrace      = 5 * time.Second // past drain_timeout before a worker is killed: its forced close (closeGrace) and the program's own cleanup after <-daemonChan
	stopTimeout    = 3 * time.Second // -s stop: how long workers get before SIGKILL
	maxRestartWait = 5 * time.Second
)

// master holds the listeners and the pid, starts workers and replaces them.
// All its state belongs to the goroutine running loop; other goroutines only
// send events.
type master struct {
	opts    *options
	cfg     *Config  // the config the current worker serves
	acct    *account // the account its workers run as
	log     *slog.Logger
	out     *logWriter // stderr, through which the master logs and copies its workers' output
	exe     string
	args    []string
	dir     string
	pidfile *pidFile
	status  *statusFile
	prio    *startPriority // nil when the master's priority could not be read
	notify  *notifier
	report  func(msg string, err error) // tells the launcher how the first start went; nil once done

	held     map[string]*heldListener // by listenKey
	workers  map[int]*worker          // every live child, by pid
	current  *worker
	starting *worker
	gen      int
	restarts int // consecutive crashes of the current worker

	hups         int  // SIGHUPs received, for -s reload to find its reload
	loading      bool // a reload's config is being read, off the loop
	loadingSince time.Time
	reloadQueued bool
	stopping     string // "", "quit" or "stop"
	exitCode     int
	everReady    bool // a worker has served; until then a failure ends the master
	ops          masterOps
	trim         memoryTrimmer // memory.go

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

type eventKind int

const (
	evSignal eventKind = iota
	evReady
	evDraining
	evReadyTimeout
	evDrainTimeout
	evRestart
	evConfigLoaded
	evReport      // a worker's build or connections (report.go)
	evSaveStatus  // time to write the state file (saveStatusSoon)
	evLameDuckEnd // shutdown_delay is over: drain (lameduck.go)
)

type event struct {
	kind eventKind
	sig  os.Signal
	w    *worker
	n    int
	msg  controlMsg // evReport
	at   time.Time  // evDraining: when the worker's message was read

	// evConfigLoaded: the config a reload read, or why it could not.
	cfg  *Config
	acct *account
	err  error
}

// loadReloadConfig reads the config for a reload and resolves the account
// its workers are to run as. It runs off the master's loop: a config on a
// slow disk or a user lookup through a slow NSS service (LDAP) must not stop
// the loop from reaping workers and firing drain timers. A variable, so that
// a test can make it slow.
var loadReloadConfig = func(path string) (*Config, *account, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	acct, err := resolveAccount(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, acct, nil
}

// runMaster is the master's life: bind, start the first worker, then serve
// signals until told to stop. It returns the process's exit status.
func runMaster(opts *options, cfg *Config, report func(string, error)) int {
	out := newLogWriter(os.Stderr, "pid", os.Getpid(), "role", "master")
	defer out.flush(logFlushWait)
	log, logSettings := newConfiguredLogger(out, opts.verbose, "master", 0, cfg)
	m := &master{
		opts:    opts,
		cfg:     cfg,
		log:     log,
		out:     out,
		exe:     opts.exe,
		args:    os.Args,
		report:  report,
		held:    make(map[string]*heldListener),
		workers: make(map[int]*worker),
		events:  make(chan event, 64),
		notify:  newNotifier(log),
		ops:     masterOps{started: time.Now(), log: logSettings, metrics: newMasterMetrics()},
	}
	setProcName("master")
	setMasterGC()
	defer m.trim.stop()
	// Signals that arrived since Daemonize began are waiting in sigs.
	sigs := opts.sigs
	if sigs == nil {
		sigs = catchSignals()
	}
	signal.Notify(sigs, syscall.SIGCHLD)
	go func() {
		for s := range sigs {
			// SIGPIPE is caught only so that a write to a stderr
			// nobody reads fails instead of killing the master.
			if s != syscall.SIGPIPE {
				m.events <- event{kind: evSignal, sig: s}
			}
		}
	}()
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
	if m.acct, err = resolveAccount(cfg); err != nil {
		return fail(err)
	}
	if m.prio, err = boostMaster(cfg.StartBoost); err != nil {
		m.log.Info("workers start at the master's priority: raising it needs CAP_SYS_NICE (which a container may drop even for root)", "start_boost", cfg.StartBoost, "err", err)
	}
	if m.pidfile, err = lockPidFile(cfg); err != nil {
		return fail(err)
	}
	if cfg.PidFile == "" {
		// Runs last: the daemon's own runtime directory goes once its
		// files are gone, unless a default log file still lives there.
		defer os.Remove(filepath.Dir(m.pidfile.path))
	}
	defer m.pidfile.remove()
	statusFailed := func(err error) {
		m.log.Warn("writing the state file failed", "err", err, "path", statePath(m.pidfile.path))
	}
	if m.status, err = openStatusFile(statePath(m.pidfile.path), statusFailed); err != nil {
		return fail(err)
	}
	defer m.status.remove()
	if m.status.master == nil {
		m.log.Warn("/proc does not say which executable and start time this master has: -s will refuse to signal it", "state", m.status.path)
	}

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
	w, err := m.spawn(cfg, m.acct, held, added)
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
			// The worker replies once its listeners are closed and it
			// has taken the new worker's socket: after=, from the order
			// to the reply read (not to the loop's turn for it), bounds
			// how long it kept accepting once told to stop.
			attrs := []any{"worker", ev.w.pid, "gen", ev.w.gen, "connections", ev.n}
			if !ev.w.drained.IsZero() {
				attrs = append(attrs, "after", max(ev.at.Sub(ev.w.drained), 0).Round(time.Microsecond))
			}
			m.log.Info("worker draining", attrs...)
		case evReadyTimeout:
			if ev.w == m.starting {
				m.log.Error("new worker not ready in time; killing it", "worker", ev.w.pid, "gen", ev.w.gen, "ready_timeout", ev.w.cfg.readyTimeout())
				ev.w.late = true
				syscall.Kill(ev.w.pid, syscall.SIGKILL)
			}
		case evDrainTimeout:
			if m.workers[ev.w.pid] == ev.w {
				m.log.Warn("worker outlived its drain; killing it", "worker", ev.w.pid, "gen", ev.w.gen, "held_by", ev.w.report.stats.heldBy())
				syscall.Kill(ev.w.pid, syscall.SIGKILL)
			}
		case evRestart:
			if m.current == nil && m.starting == nil && m.stopping == "" {
				// A reload asked meanwhile reads the config
				// afresh; a restart would not. But a reload
				// reading its config already may hang on it
				// (a user lookup through a hung LDAP): the
				// config that served serves meanwhile.
				if m.loading || !m.reloadIfQueued() {
					m.startWorker(m.cfg, m.acct, m.held, nil)
				}
			}
		case evConfigLoaded:
			m.configLoaded(ev)
		case evReport:
			m.takeReport(ev)
		case evSaveStatus:
			m.ops.statusSave.pending = false
			m.saveStatus()
		case evLameDuckEnd:
			m.lameDuckEnd()
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
		m.ops.metrics.reloadBegins()
		m.hups++
		m.log.Info("reload asked")
		m.reload()
		// -s reload reads the HUP count to tell its reload from one
		// already under way: the state file must include this one at
		// once. A reload that reads its config now saves it as soon as
		// its worker is started: the snapshot is not worth delaying the
		// start for.
		if !m.loading {
			m.saveStatus()
		}
	case syscall.SIGUSR1:
		m.reopen()
	case syscall.SIGQUIT, syscall.SIGTERM:
		m.shutdown("quit")
	case syscall.SIGINT:
		m.shutdown("stop")
	}
}

// reload starts reading the config, off the loop, for a new worker, unless
// a reload is under way already (reading its config, or its worker
// starting): then this one waits its turn, so that however many HUPs arrive,
// one reload follows the last of them. configLoaded carries on.
func (m *master) reload() {
	if m.stopping != "" || m.inLameDuck() {
		// Said in the reload result, so -s reload answers at once.
		m.finishReload(m.hups, nil, errors.New("the daemon is shutting down: not reloaded"))
		return
	}
	if m.starting != nil || m.loading {
		m.reloadQueued = true
		m.log.Info("reload queued behind the one under way")
		return
	}
	m.notify.reloading()
	m.loading = true
	m.loadingSince = time.Now()
	began, path := m.hups, m.opts.config
	go func() {
		cfg, acct, err := loadReloadConfig(path)
		m.events <- event{kind: evConfigLoaded, n: began, cfg: cfg, acct: acct, err: err}
	}()
}

// reloadIfQueued starts the reload that waited for the one under way, if
// one did.
func (m *master) reloadIfQueued() bool {
	if !m.reloadQueued {
		return false
	}
	m.reloadQueued = false
	m.reload()
	return true
}

// configLoaded carries on the reload that began at HUP count ev.n with the
// config it read: bind what it adds and start its worker.
func (m *master) configLoaded(ev event) {
	m.loading = false
	// The HUP count, which the signal left to be saved here (signal),
	// after the worker's start.
	defer m.saveStatus()
	if m.stopping != "" {
		return
	}
	if m.starting != nil {
		// A worker that died was restarted while the config was read:
		// read it again once that one is ready, and start one worker
		// at a time.
		m.reloadQueued = true
		return
	}
	began, cfg := ev.n, ev.cfg
	if ev.err != nil {
		m.log.Error("reload failed: config not loaded; the current worker, if any, keeps serving", "err", ev.err)
		m.finishReload(began, nil, ev.err)
		m.reloadFailed()
		return
	}
	if pidPath(cfg) != m.pidfile.path {
		m.log.Warn("pidfile changed; it takes effect when the daemon is restarted, not on reload", "pidfile", m.pidfile.path, "new", pidPath(cfg))
	}
	if cfg.MaxFDs != m.cfg.MaxFDs {
		m.log.Warn("maxfds changed; it takes effect when the daemon is restarted, not on reload", "maxfds", m.cfg.MaxFDs, "new", cfg.MaxFDs)
	}
	if m.prio != nil && cfg.StartBoost != m.cfg.StartBoost {
		if err := m.prio.apply(cfg.StartBoost); err != nil {
			m.log.Info("workers start at the master's priority: raising it needs CAP_SYS_NICE (which a container may drop even for root)", "start_boost", cfg.StartBoost, "err", err)
		}
	}
	held, added, err := m.bind(cfg, nil)
	if err != nil {
		m.log.Error("reload failed; the current worker, if any, keeps serving", "err", err)
		m.finishReload(began, nil, err)
		m.reloadFailed()
		return
	}
	if w := m.startWorker(cfg, ev.acct, held, added); w != nil {
		w.began, w.asked = began, m.loadingSince
	}
}

// reloadFailed goes on after a reload that started no worker: with the
// reload asked meanwhile, if any, else with a restart if no worker serves.
func (m *master) reloadFailed() {
	if !m.reloadIfQueued() {
		m.scheduleRestart() // only if no worker serves
	}
}

// startWorker spawns a worker for cfg and makes it the starting one.
func (m *master) startWorker(cfg *Config, acct *account, held map[string]*heldListener, added []*heldListener) *worker {
	w, err := m.spawn(cfg, acct, held, added)
	if err != nil {
		for _, h := range added {
			h.close()
		}
		m.log.Error("starting a worker failed; the current worker, if any, keeps serving", "err", err)
		m.finishReload(m.hups, nil, err)
		m.reloadFailed()
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
	m.cfg, m.acct = w.cfg, w.acct
	m.ops.log.apply(w.cfg) // log_level and log_format as the config now served says
	took := time.Since(w.started)
	if !m.everReady {
		m.trim.soon() // what the start left behind
	}
	m.everReady = true
	if old != nil {
		m.drain(old)
	}
	w.inbox.close() // passed to the old worker, or nobody to hand over
	// Listeners no group uses any more go only after the old worker was
	// told to stop accepting on them.
	for key, h := range m.held {
		if _, ok := w.held[key]; !ok {
			m.log.Info("listener closed", "group", h.g.Name, "addr", h.ln.Addr().String())
			h.close()
		}
	}
	m.held = w.held
	m.log.Info("worker ready", append([]any{"worker", w.pid, "gen", w.gen, "after", took.Round(time.Microsecond)}, w.timelineAttrs(time.Now())...)...)
	if m.ops.lameDuck != lameDuckNone {
		w.send(msgLameDuck) // a worker restarted in the lame duck
	}
	if w.began >= 0 {
		m.finishReload(w.began, old, nil)
	}
	m.saveStatus()
	m.notify.ready()
	if m.report != nil {
		// The start's lines are in the log before the launcher says
		// it started (the log is written off the loop), unless the
		// log is stalled.
		if m.out != nil {
			m.out.flush(startFlushWait)
		}
		m.report(m.startLine(), nil)
		m.report = nil
	}
	m.reloadIfQueued()
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
	m.sendDrain(w)
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
	m.workerGone(w)
	w.stopTimer()
	w.ctl.Close()
	w.inbox.close()
	how := exitDescription(ws)
	switch {
	case w.state == workerDraining:
		m.log.Info("old worker exited", "worker", w.pid, "gen", w.gen, "after", time.Since(w.drained).Round(time.Microsecond), "status", how)
		m.trim.soon()
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
		if w.began >= 0 {
			// A worker restarted after a crash was no reload.
			m.finishReload(w.began, nil, err)
		}
		if m.current == nil {
			m.scheduleRestart()
		} else {
			m.reloadIfQueued()
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
	if m.lameDuckFirst(how) {
		return
	}
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
			w.send(msgDrain)
			wait = w.cfg.drainTimeout() + killGrace
		} else {
			w.send(msgStop)
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
	// -s reopen waits for the count to pass the one it saw.
	defer m.reopened()
	m.ops.reopenErr = ""
	if m.opts.foreground {
		m.log.Info("reopen: logging to stderr in the foreground, nothing to reopen")
		return
	}
	err := redirectOutput(m.cfg)
	if err != nil {
		m.ops.reopenErr = err.Error()
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

package gozd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// status is what the master tells -s through the state file beside its pid
// file: who it is, which config it serves, its workers, and how the last
// reload went.
type status struct {
	Pid    int           `json:"pid"`
	Config string        `json:"config"`
	Master *procIdentity `json:"master,omitempty"` // nil when /proc could not say at start
	Worker int           `json:"worker"`           // current worker's pid, 0 while none serves
	Gen    int           `json:"gen"`
	HUPs   int           `json:"hups"` // SIGHUPs received so far
	Last   *reloadResult `json:"last,omitempty"`

	// For -s status and -s reopen.
	Started     time.Time      `json:"started,omitzero"` // when the master started
	Exe         string         `json:"exe,omitempty"`    // the path workers are started from
	Stopping    string         `json:"stopping,omitempty"`
	LameDuck    bool           `json:"lame_duck,omitempty"` // shutting down, serving on for shutdown_delay
	Workers     []workerStatus `json:"workers,omitempty"`
	Groups      []groupStatus  `json:"groups,omitempty"`
	Reopens     int            `json:"reopens"` // SIGUSR1s handled so far
	ReopenError string         `json:"reopen_error,omitempty"`
	Foreground  bool           `json:"foreground,omitempty"` // logs to stderr: nothing to reopen
}

// workerStatus is one worker as -s status shows it.
type workerStatus struct {
	Pid         int          `json:"pid"`
	Gen         int          `json:"gen"`
	State       string       `json:"state"` // starting, serving or draining
	Started     time.Time    `json:"started"`
	Draining    time.Time    `json:"draining,omitzero"` // when it was told to drain
	Build       *buildInfo   `json:"build,omitempty"`
	Connections int          `json:"connections"`
	Groups      []groupStats `json:"groups,omitempty"`
}

// groupStatus is one group of the config the serving worker serves.
type groupStatus struct {
	Name        string `json:"name"`
	Mode        Mode   `json:"mode"`
	Addr        string `json:"addr"`
	Connections int    `json:"connections"` // in every worker
}

// procIdentity tells one process from any other that later gets its pid:
// the file it runs (a deploy replaces the binary at the path, but the
// running master keeps its inode, which /proc/PID/exe still resolves to) and
// when it started.
type procIdentity struct {
	ExeDev uint64 `json:"exe_dev"`
	ExeIno uint64 `json:"exe_ino"`
	Start  uint64 `json:"start"` // clock ticks after boot: field 22 of /proc/PID/stat
}

// reloadResult is the outcome of one reload.
type reloadResult struct {
	Began     int    `json:"began"` // the HUP count when it began: it covers every HUP up to that one
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	OldWorker int    `json:"old_worker,omitempty"`
	NewWorker int    `json:"new_worker,omitempty"`

	Time  time.Time  `json:"time,omitzero"`   // when it ended
	Exe   string     `json:"exe,omitempty"`   // the new worker's binary
	Build *buildInfo `json:"build,omitempty"` // and its build, as it said
}

// maxStatusSize bounds what is read of a state file. It holds each worker's
// connections group by group: some 300 bytes a group and worker, so a daemon
// of many groups with workers still draining writes tens of KiB.
const maxStatusSize = 16 << 20

// statusFile is the master's state file. The loop hands it snapshots and a
// goroutine of its own writes them: a write is a create, a write and a
// rename, and on ext4 a rename over a file flushes the new one's data first,
// which took 7–10 ms on the SIGHUP path, before the new worker was started.
// Only the newest snapshot waiting is written; they are taken in the loop's
// order, so the file never goes back in time.
type statusFile struct {
	path   string
	master *procIdentity
	last   *reloadResult

	mu      sync.Mutex
	next    []byte // the snapshot waiting to be written, if any
	closed  bool
	wake    chan struct{}
	stopped chan struct{} // closed when the writer goroutine has returned
	failed  func(error)   // reports a failed write; called by the writer goroutine
}

// openStatusFile prepares the state file at path for the master started in
// this process. A file in place that is a symlink or another user's is
// refused: whoever put it there could make -s trust it.
func openStatusFile(path string, failed func(error)) (*statusFile, error) {
	f, err := openOwnFile(path, "state file")
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		f.Close()
	}
	s := &statusFile{path: path, failed: failed, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	if id, err := procIdentityOf(os.Getpid()); err == nil {
		s.master = &id
	}
	go s.run()
	return s, nil
}

// save hands b to the writer goroutine, replacing a snapshot not written yet.
func (s *statusFile) save(b []byte) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.next = b
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *statusFile) run() {
	defer close(s.stopped)
	for range s.wake {
		s.mu.Lock()
		b := s.next
		s.next = nil
		s.mu.Unlock()
		if b == nil {
			continue
		}
		if err := s.write(b); err != nil {
			s.failed(err)
		}
	}
}

// write replaces the state file: a temporary file of an unpredictable name
// (O_EXCL, never a planted link) renamed over the path.
func (s *statusFile) write(b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".tmp*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// remove stops the writer, waiting up to logFlushWait for a write under way
// (one on a hung filesystem is left behind: the master is exiting), and
// removes the file.
func (s *statusFile) remove() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.wake)
	}
	s.mu.Unlock()
	select {
	case <-s.stopped:
	case <-time.After(logFlushWait):
	}
	os.Remove(s.path)
}

// readStatus reads the state file at path, refusing one gozd cannot trust.
func readStatus(path string) (*status, error) {
	f, err := openOwnFile(path, "state file")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStatusSize+1))
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if len(b) > maxStatusSize {
		return nil, fmt.Errorf("state file %s: over %d bytes", path, maxStatusSize)
	}
	st, err := parseStatus(b)
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return st, nil
}

// parseStatus decodes a state file.
func parseStatus(b []byte) (*status, error) {
	var st status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	if st.Pid <= 0 {
		return nil, fmt.Errorf("no master pid (%d)", st.Pid)
	}
	if st.Worker < 0 {
		return nil, fmt.Errorf("bad worker pid %d", st.Worker)
	}
	return &st, nil
}

// procIdentityOf reads the identity of process pid from /proc.
func procIdentityOf(pid int) (procIdentity, error) {
	var exe syscall.Stat_t
	p := fmt.Sprintf("/proc/%d/exe", pid)
	if err := syscall.Stat(p, &exe); err != nil {
		return procIdentity{}, fmt.Errorf("%s: %w", p, err)
	}
	start, err := procStartTime(pid)
	if err != nil {
		return procIdentity{}, err
	}
	return procIdentity{ExeDev: uint64(exe.Dev), ExeIno: exe.Ino, Start: start}, nil
}

// procStartTime returns field 22 of /proc/PID/stat, the process's start
// time in clock ticks after boot.
func procStartTime(pid int) (uint64, error) {
	p := fmt.Sprintf("/proc/%d/stat", pid)
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses itself: count fields after the last ')', which
	// begin at field 3.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: unexpected format", p)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 22-2 {
		return 0, fmt.Errorf("%s: unexpected format", p)
	}
	start, err := strconv.ParseUint(f[22-3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: start time: %w", p, err)
	}
	return start, nil
}

// finishReload records how the reload that began at HUP count began ended.
func (m *master) finishReload(began int, old *worker, err error) {
	r := &reloadResult{Began: began, OK: err == nil}
	if err != nil {
		r.Error = err.Error()
		if m.stopping == "" && !m.inLameDuck() {
			// The reload is over: systemd waits for READY=1
			// after RELOADING=1, whether it worked or not.
			m.notify.ready()
		}
	}
	if old != nil {
		r.OldWorker = old.pid
	}
	if m.current != nil && err == nil {
		r.NewWorker = m.current.pid
		r.Exe, r.Build = m.exe, m.current.report.build
	}
	r.Time = time.Now()
	m.status.last = r
	m.ops.metrics.reloadEnded(err == nil)
	m.saveStatus()
}

// saveStatus writes the state file; the error is logged, never fatal.
func (m *master) saveStatus() {
	if m.status == nil {
		return
	}
	st := &status{Pid: os.Getpid(), Config: m.opts.config, Master: m.status.master, HUPs: m.hups, Last: m.status.last, Gen: m.gen}
	if m.current != nil {
		st.Worker = m.current.pid
	}
	m.addOpsStatus(st)
	m.updateMetrics()
	m.ops.statusSave.last = time.Now()
	b, err := json.Marshal(st)
	if err != nil {
		m.log.Warn("writing the state file failed", "err", err, "path", m.status.path)
		return
	}
	m.status.save(b)
	m.trim.afterWork() // a second from now, when the writer is long done
}

// addOpsStatus adds to st what -s status shows: the master's start and
// binary, its workers with their connections, the groups.
func (m *master) addOpsStatus(st *status) {
	st.Started, st.Exe, st.Stopping, st.LameDuck = m.ops.started, m.exe, m.stopping, m.inLameDuck()
	st.Reopens, st.ReopenError, st.Foreground = m.ops.reopens, m.ops.reopenErr, m.opts.foreground
	conns := make(map[string]int)
	for _, w := range m.workers {
		ws := workerStatus{Pid: w.pid, Gen: w.gen, State: w.state.String(), Started: w.started, Build: w.report.build}
		if w.state == workerDraining {
			ws.Draining = w.drained
		}
		if s := w.report.stats; s != nil {
			ws.Groups, ws.Connections = s.Groups, s.connections()
			for _, g := range s.Groups {
				conns[g.Name] += g.connections()
			}
		}
		st.Workers = append(st.Workers, ws)
	}
	slices.SortFunc(st.Workers, func(a, b workerStatus) int { return b.Gen - a.Gen })
	for i := range m.cfg.Groups {
		g := &m.cfg.Groups[i]
		gst := groupStatus{Name: g.Name, Mode: g.Mode, Addr: g.Address, Connections: conns[g.Name]}
		if h := m.held[listenKey(g)]; h != nil && h.ln != nil {
			gst.Addr = h.ln.Addr().String()
		}
		st.Groups = append(st.Groups, gst)
	}
}

func (s workerState) String() string {
	switch s {
	case workerStarting:
		return "starting"
	case workerServing:
		return "serving"
	case workerDraining:
		return "draining"
	}
	return fmt.Sprintf("workerState(%d)", int(s))
}

// reopened records a reopen for -s reopen.
func (m *master) reopened() {
	m.ops.reopens++
	m.saveStatus()
}

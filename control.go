package gozd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Commands of -s, and the signal each sends to the master.
var controlSignals = map[string]syscall.Signal{
	"stop":   syscall.SIGINT,
	"quit":   syscall.SIGQUIT,
	"reopen": syscall.SIGUSR1,
	"reload": syscall.SIGHUP,
}

// status is what the master tells -s through the state file beside its pid
// file: which config it serves, its workers, and how the last reload went.
type status struct {
	Pid    int           `json:"pid"`
	Config string        `json:"config"`
	Worker int           `json:"worker"` // current worker's pid, 0 while none serves
	Gen    int           `json:"gen"`
	HUPs   int           `json:"hups"` // SIGHUPs received so far
	Last   *reloadResult `json:"last,omitempty"`
}

// reloadResult is the outcome of one reload.
type reloadResult struct {
	Began     int    `json:"began"` // the HUP count when it began: it covers every HUP up to that one
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	OldWorker int    `json:"old_worker,omitempty"`
	NewWorker int    `json:"new_worker,omitempty"`
}

type statusFile struct {
	path string
	last *reloadResult
}

func (s *statusFile) write(st *status) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

func (s *statusFile) remove() { os.Remove(s.path) }

func readStatus(path string) (*status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return &st, nil
}

// finishReload records how the reload that began at HUP count began ended.
func (m *master) finishReload(began int, old *worker, err error) {
	r := &reloadResult{Began: began, OK: err == nil}
	if err != nil {
		r.Error = err.Error()
		m.notify.ready() // back to serving with the old worker
	}
	if old != nil {
		r.OldWorker = old.pid
	}
	if m.current != nil && err == nil {
		r.NewWorker = m.current.pid
	}
	m.status.last = r
	m.saveStatus()
}

// saveStatus writes the state file; the error is logged, never fatal.
func (m *master) saveStatus() {
	if m.status == nil {
		return
	}
	st := &status{Pid: os.Getpid(), Config: m.opts.config, HUPs: m.hups, Last: m.status.last, Gen: m.gen}
	if m.current != nil {
		st.Worker = m.current.pid
	}
	if err := m.status.write(st); err != nil {
		m.log.Warn("writing the state file failed", "err", err)
	}
}

// control carries out -s cmd against the daemon of the config at opts.config
// and returns what to print on success.
func control(opts *options, cmd string) (string, error) {
	sig, ok := controlSignals[cmd]
	if !ok {
		return "", fmt.Errorf("unknown -s command %q: want stop, quit, reopen or reload", cmd)
	}
	cfg, err := LoadConfig(opts.config)
	if err != nil {
		if cmd == "reload" {
			return "", fmt.Errorf("config not reloaded: %w", err)
		}
		return "", err
	}
	path := pidPath(cfg)
	pid, err := runningPid(path)
	if err != nil {
		return "", err
	}
	statePath := path + ".state"
	st, err := readStatus(statePath)
	if err != nil {
		return "", fmt.Errorf("daemon pid %d: %w", pid, err)
	}
	abs, _ := filepath.Abs(opts.config)
	if st.Pid != pid || st.Config != abs {
		return "", fmt.Errorf("pid %d in %s serves config %s, not %s: not signalled", pid, path, st.Config, abs)
	}
	if cmd == "reload" {
		if err := checkAccounts(cfg); err != nil {
			return "", fmt.Errorf("config not reloaded: %w", err)
		}
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return "", fmt.Errorf("signalling pid %d: %w", pid, err)
	}
	switch cmd {
	case "reload":
		return waitReload(statePath, pid, st.HUPs, cfg)
	case "quit", "stop":
		wait := cfg.drainTimeout() + killGrace + 5*time.Second
		if cmd == "stop" {
			wait = stopTimeout + 5*time.Second
		}
		deadline := time.Now().Add(wait)
		// The lock goes as the master's last act; its exit follows.
		for !lockFree(path) || !processGone(pid) {
			if time.Now().After(deadline) {
				return "", fmt.Errorf("pid %d still running %s after %s", pid, cmd, wait)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return fmt.Sprintf("gozd: pid %d stopped (%s)", pid, cmd), nil
	}
	return fmt.Sprintf("gozd: pid %d asked to reopen its log", pid), nil
}

// waitReload waits for the master to finish a reload that began after the
// SIGHUP it was sent (the HUP count passed hups) and reports it.
func waitReload(statePath string, pid, hups int, cfg *Config) (string, error) {
	// The reload may be queued behind one under way: two ready_timeouts.
	wait := 2*cfg.readyTimeout() + 10*time.Second
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		st, err := readStatus(statePath)
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("daemon pid %d exited during the reload", pid)
		}
		if err == nil && st.Last != nil && st.Last.Began > hups {
			if !st.Last.OK {
				if st.Worker == 0 {
					return "", fmt.Errorf("reload failed and no worker is serving (the master keeps retrying): %s", st.Last.Error)
				}
				return "", fmt.Errorf("reload failed, old worker %d keeps serving: %s", st.Worker, st.Last.Error)
			}
			if st.Last.OldWorker == 0 {
				return fmt.Sprintf("gozd: reloaded pid %d: worker %d serves (none was serving before)", pid, st.Last.NewWorker), nil
			}
			return fmt.Sprintf("gozd: reloaded pid %d: worker %d replaced worker %d", pid, st.Last.NewWorker, st.Last.OldWorker), nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "", fmt.Errorf("no reload result from pid %d within %s", pid, wait)
}

// processGone reports whether pid has exited. A zombie counts as gone: it
// holds nothing any more, and its reaping is its parent's business.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

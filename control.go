package gozd

import (
	"errors"
	"fmt"
	"os"
	"strconv"
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
	if cfg.PidFile == "" {
		if err := defaultRunDir(cfg).check(); err != nil {
			return "", err
		}
	}
	pid, owner, err := runningPid(path)
	if err != nil {
		if !errors.Is(err, ErrNotRunning) {
			err = fmt.Errorf("%w: not signalled", err)
		}
		return "", err
	}
	state := statePath(path)
	st, err := readStatus(state)
	if err != nil {
		return "", fmt.Errorf("daemon pid %d: %w: not signalled", pid, err)
	}
	if err := verifyMaster(pid, owner, st, path, opts.config); err != nil {
		return "", fmt.Errorf("%w: not signalled", err)
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
		return waitReload(state, pid, st.HUPs, cfg)
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

// verifyMaster checks, before -s signals pid, that pid is the master the
// state file st describes and serves config: the state names pid and
// config, and /proc/PID shows the executable and start time the master
// recorded when it started, run by the pid file's owner (or root). A pid
// file and state file left by a master killed with -9, whose pid another
// process now has, fail the start time.
func verifyMaster(pid int, owner uint32, st *status, pidPath, config string) error {
	if st.Pid != pid {
		return fmt.Errorf("pid file %s names pid %d, its state file pid %d", pidPath, pid, st.Pid)
	}
	if st.Config != config {
		return fmt.Errorf("pid %d in %s serves config %s, not %s", pid, pidPath, st.Config, config)
	}
	if st.Master == nil {
		return fmt.Errorf("state file %s does not say which process the master is (a gozd before this check wrote it, or /proc was missing at start), so pid %d cannot be verified; check it and signal it yourself, or restart the daemon", statePath(pidPath), pid)
	}
	id, err := procIdentityOf(pid)
	if err != nil {
		return fmt.Errorf("cannot verify pid %d: %w", pid, err)
	}
	if id.Start != st.Master.Start {
		return fmt.Errorf("pid %d is not the master recorded in %s: it started at tick %d, the master at tick %d (the master is gone and its pid reused?)", pid, statePath(pidPath), id.Start, st.Master.Start)
	}
	if id.ExeDev != st.Master.ExeDev || id.ExeIno != st.Master.ExeIno {
		return fmt.Errorf("pid %d is not the master recorded in %s: it runs another executable (device %d inode %d, the master's %d %d)", pid, statePath(pidPath), id.ExeDev, id.ExeIno, st.Master.ExeDev, st.Master.ExeIno)
	}
	uid, err := procEffectiveUID(pid)
	if err != nil {
		return fmt.Errorf("cannot verify pid %d: %w", pid, err)
	}
	if uid != owner && uid != 0 {
		return fmt.Errorf("pid %d runs as uid %d, but its pid file %s is owned by uid %d", pid, uid, pidPath, owner)
	}
	return nil
}

// procEffectiveUID returns the effective uid of process pid.
func procEffectiveUID(pid int) (uint32, error) {
	p := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			// Real, effective, saved, filesystem.
			if f := strings.Fields(rest); len(f) >= 2 {
				uid, err := strconv.ParseUint(f[1], 10, 32)
				if err == nil {
					return uint32(uid), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("%s: no Uid line", p)
}

package gozd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
		wait := cfg.ShutdownDelay + cfg.drainTimeout() + killGrace + 5*time.Second
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
	return waitReopen(state, pid, st.Reopens)
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
				return fmt.Sprintf("gozd: reloaded pid %d: worker %d serves (none was serving before)%s", pid, st.Last.NewWorker, st.Last.binary()), nil
			}
			return fmt.Sprintf("gozd: reloaded pid %d: worker %d replaced worker %d%s", pid, st.Last.NewWorker, st.Last.OldWorker, st.Last.binary()), nil
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

// Exit statuses of -s status, as LSB init scripts expect them.
const (
	ExitNotRunning    = 3 // no daemon runs for the config
	ExitStatusUnknown = 4 // the daemon's state could not be read or trusted
)

// statusCommand is -s status: it prints what the daemon of opts.config is
// doing, read from its state file, to out, in JSON with -json, and returns
// the exit status: ExitOK, ExitNotRunning, or ExitStatusUnknown with the
// reason on stderr.
func statusCommand(opts *options, out io.Writer) int {
	unknown := func(err error) int {
		fmt.Fprintf(os.Stderr, "gozd: status unknown: %v\n", err)
		return ExitStatusUnknown
	}
	cfg, err := LoadConfig(opts.config)
	if err != nil {
		return unknown(err)
	}
	path := pidPath(cfg)
	if cfg.PidFile == "" {
		if err := defaultRunDir(cfg).check(); err != nil {
			return unknown(err)
		}
	}
	pid, owner, err := runningPid(path)
	if errors.Is(err, ErrNotRunning) {
		if opts.json {
			b, _ := json.Marshal(statusReport{PidFile: path})
			fmt.Fprintf(out, "%s\n", b)
		} else {
			fmt.Fprintf(out, "gozd: not running (config %s, pid file %s)\n", opts.config, path)
		}
		return ExitNotRunning
	}
	if err != nil {
		return unknown(err)
	}
	st, err := readStatus(statePath(path))
	if err != nil {
		return unknown(fmt.Errorf("daemon pid %d: %w", pid, err))
	}
	if err := verifyMaster(pid, owner, st, path, opts.config); err != nil {
		return unknown(err)
	}
	r := statusReport{Running: true, PidFile: path, status: st}
	if !st.Started.IsZero() {
		r.Uptime = time.Since(st.Started).Seconds()
	}
	if opts.json {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return unknown(err)
		}
		fmt.Fprintf(out, "%s\n", b)
		return ExitOK
	}
	io.WriteString(out, r.text())
	return ExitOK
}

// statusReport is what -s status prints: the state file and what -s
// found out itself.
type statusReport struct {
	Running bool    `json:"running"`
	PidFile string  `json:"pidfile"`
	Uptime  float64 `json:"uptime_seconds,omitempty"`
	*status
}

// text is the report for people.
func (r statusReport) text() string {
	st := r.status
	var b strings.Builder
	state := "running"
	switch {
	case st.LameDuck:
		state = "shutting down (lame duck: health checks fail, still serving)"
	case st.Stopping != "":
		state = "shutting down (" + st.Stopping + ")"
	}
	fmt.Fprintf(&b, "gozd: %s, master pid %d, up %s\n", state, st.Pid, time.Duration(r.Uptime*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(&b, "  config   %s\n", st.Config)
	fmt.Fprintf(&b, "  binary   %s\n", st.Exe)
	fmt.Fprintf(&b, "  pid file %s\n", r.PidFile)
	if st.Worker == 0 {
		b.WriteString("  no worker serving\n")
	}
	for _, w := range st.Workers {
		switch w.State {
		case "serving":
			fmt.Fprintf(&b, "  worker   pid %d, generation %d, serving since %s, %d connections; build %s\n",
				w.Pid, w.Gen, w.Started.Format(time.RFC3339), w.Connections, w.Build)
		case "draining":
			fmt.Fprintf(&b, "  worker   pid %d, generation %d, draining for %s, %d connections left\n",
				w.Pid, w.Gen, time.Since(w.Draining).Round(time.Second), w.Connections)
		default:
			fmt.Fprintf(&b, "  worker   pid %d, generation %d, %s since %s\n", w.Pid, w.Gen, w.State, w.Started.Format(time.RFC3339))
		}
	}
	for _, g := range st.Groups {
		fmt.Fprintf(&b, "  group    %s %s on %s, %d connections\n", g.Name, g.Mode, g.Addr, g.Connections)
	}
	if l := st.Last; l != nil {
		when := ""
		if !l.Time.IsZero() {
			when = " at " + l.Time.Format(time.RFC3339)
		}
		if l.OK {
			fmt.Fprintf(&b, "  last reload ok%s: worker %d%s\n", when, l.NewWorker, l.binary())
		} else {
			fmt.Fprintf(&b, "  last reload FAILED%s: %s\n", when, firstLine(l.Error))
		}
	} else {
		b.WriteString("  no reload yet\n")
	}
	return b.String()
}

// firstLine is s up to its first newline: a failed worker's output is
// quoted in its reload error.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// binary names the binary and build a reload started, for -s reload.
func (r *reloadResult) binary() string {
	if r.Exe == "" {
		return ""
	}
	return fmt.Sprintf(", binary %s, build %s", r.Exe, r.Build)
}

// waitReopen waits for the master to handle the SIGUSR1 it was sent (the
// reopen count passed reopens) and reports how it went.
func waitReopen(statePath string, pid, reopens int) (string, error) {
	wait := 10 * time.Second
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		st, err := readStatus(statePath)
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("daemon pid %d exited before reopening its log", pid)
		}
		if err == nil && st.Reopens > reopens {
			switch {
			case st.ReopenError != "":
				return "", fmt.Errorf("pid %d could not reopen its log: %s", pid, st.ReopenError)
			case st.Foreground:
				return fmt.Sprintf("gozd: pid %d runs in the foreground and logs to stderr: nothing to reopen", pid), nil
			}
			return fmt.Sprintf("gozd: pid %d reopened its log", pid), nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "", fmt.Errorf("pid %d did not confirm the reopen within %s (a gozd before reopen confirmations?)", pid, wait)
}

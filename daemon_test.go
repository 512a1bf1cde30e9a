package gozd_test

// Tests of gozd run as a real daemon, the way an operator or an init system
// runs it: background start, pid file, -s commands, failed starts, privilege
// drop, systemd notify and socket activation. Helpers are prefixed "ops".

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gozd/gozd"
)

// opsDir returns a private directory with a short path: unix socket paths
// must fit in 108 bytes, and t.TempDir paths can be long.
func opsDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gozd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// opsMixedConf writes a config for examples/mixed into dir, with its pid
// file, log file and unix socket there and every tcp group on a free port.
// extra goes before the groups (global directives).
func opsMixedConf(t *testing.T, dir, name, extra string) string {
	t.Helper()
	key, cert := writeKeyPair(t, dir)
	return writeFile(t, dir, name, fmt.Sprintf(`pidfile %[1]s/gozd.pid
logfile %[1]s/gozd.log
drain_timeout 5s
%[2]s
[echo]
mode tcp
listen 127.0.0.1:0

[web]
mode http
listen 127.0.0.1:0

[secure]
mode https
listen 127.0.0.1:0
key %[3]s
cert %[4]s

[app]
mode fcgi
listen %[1]s/app.sock
`, dir, extra, key, cert))
}

// opsResult is how a command run to its end went.
type opsResult struct {
	code           int
	stdout, stderr string
}

func (r opsResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// opsRun runs bin with args to its end. A launcher must return without the
// daemon holding its stdout or stderr, else `out=$(app -c conf)` would hang:
// WaitDelay turns that into a test failure instead.
func opsRun(t *testing.T, bin string, args ...string) opsResult {
	t.Helper()
	return opsRunWith(t, nil, bin, args...)
}

// opsRunWith is opsRun with setup applied to the command first (its user,
// its environment).
func opsRunWith(t *testing.T, setup func(*exec.Cmd), bin string, args ...string) opsResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	if setup != nil {
		setup(cmd)
	}
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		t.Errorf("%s %s: its output was held open after it exited (by the daemon?)", bin, strings.Join(args, " "))
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) && !errors.Is(err, exec.ErrWaitDelay) {
		t.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	return opsResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// opsDaemon is a daemon started in the background by a test.
type opsDaemon struct {
	t     *testing.T
	bin   string
	conf  string
	pid   int
	line  string
	addrs map[string]string
}

// opsStart starts bin in the background with conf and expects it to serve.
func opsStart(t *testing.T, bin, conf string) *opsDaemon {
	t.Helper()
	r := opsRun(t, bin, "-c", conf)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "gozd: started, pid ") {
		t.Fatalf("start: %v", r)
	}
	d := &opsDaemon{t: t, bin: bin, conf: conf, line: strings.TrimSpace(r.stdout)}
	// Stop it at the end even if the rest of the line does not parse.
	if _, err := fmt.Sscanf(d.line, "gozd: started, pid %d", &d.pid); err != nil {
		t.Fatalf("start line %q: %v", d.line, err)
	}
	opsKillOnCleanup(t, d.pid)
	_, d.addrs = startedAddrs(t, d.line)
	return d
}

// ctl runs "-s cmd" against the daemon's config.
func (d *opsDaemon) ctl(cmd string) opsResult {
	d.t.Helper()
	return opsRun(d.t, d.bin, "-s", cmd, "-c", d.conf)
}

// worker waits until the master has exactly one live child, and returns it.
func (d *opsDaemon) worker() int {
	d.t.Helper()
	var w int
	waitUntil(d.t, fmt.Sprintf("one worker of pid %d", d.pid), func() bool {
		live := opsLive(childPids(d.pid))
		if len(live) == 1 {
			w = live[0]
		}
		return len(live) == 1
	})
	return w
}

// opsLive returns the pids that are alive.
func opsLive(pids []int) []int {
	var live []int
	for _, p := range pids {
		if processAlive(p) {
			live = append(live, p)
		}
	}
	return live
}

// opsKillOnCleanup makes sure the daemon of master pid is gone when the test
// ends: SIGINT first (the fast stop), SIGKILL to it and its workers if that
// does not do.
func opsKillOnCleanup(t *testing.T, pid int) {
	t.Cleanup(func() {
		if !processAlive(pid) {
			return
		}
		kids := childPids(pid)
		syscall.Kill(pid, syscall.SIGINT)
		deadline := time.Now().Add(10 * time.Second)
		for processAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if processAlive(pid) {
			t.Errorf("pid %d survived SIGINT for 10s; killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		// Workers leave when their master is gone; make sure.
		deadline = time.Now().Add(10 * time.Second)
		for len(opsLive(kids)) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		for _, k := range opsLive(kids) {
			syscall.Kill(k, syscall.SIGKILL)
		}
	})
}

// opsGet does GET path on the http address addr and returns the body.
func opsGet(t *testing.T, addr, path string) string {
	t.Helper()
	c := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	return string(b)
}

// opsEcho sends a line to the line echo server at network/addr and returns
// the answer.
func opsEcho(t *testing.T, network, addr, line string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("echo on %s: %v", addr, err)
	}
	return strings.TrimSuffix(got, "\n")
}

// opsStat returns the fields of /proc/pid/stat after the command name:
// [0] is the state (field 3), [3] the session id (field 6).
func opsStat(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

// opsProcsRunning returns the live pids whose executable is bin.
func opsProcsRunning(bin string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue
		}
		if (exe == bin || exe == bin+" (deleted)") && processAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// opsPrivateBinary copies a built program into dir, so that "no process runs
// this binary" is about this test's processes only.
func opsPrivateBinary(t *testing.T, src, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(src))
	installBinary(t, src, bin)
	return bin
}

// opsProcLine returns the line of /proc/pid/FILE that starts with prefix.
func opsProcLine(t *testing.T, pid int, file, prefix string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("/proc/%d/%s has no %q line", pid, file, prefix)
	return ""
}

func opsExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func opsReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOpsBackgroundStart starts a daemon without -f and checks it is a
// proper daemon: detached in its own session, stdin from /dev/null, output
// to the log file, pid in the pid file; then -s quit ends it and cleans up.
func TestOpsBackgroundStart(t *testing.T) {
	bin := buildBinary(t, "./examples/mixed", "v1")
	dir := opsDir(t)
	conf := opsMixedConf(t, dir, "bg.conf", "")
	d := opsStart(t, bin, conf)

	if !processAlive(d.pid) {
		t.Fatalf("pid %d of the start line is not alive", d.pid)
	}
	if got := strings.TrimSpace(opsReadFile(t, dir+"/gozd.pid")); got != strconv.Itoa(d.pid) {
		t.Errorf("pid file holds %q, want %d", got, d.pid)
	}
	if mine, its := opsStat(t, os.Getpid())[3], opsStat(t, d.pid)[3]; mine == its {
		t.Errorf("daemon is in the test's session %s: not detached", mine)
	}
	for fd, want := range []string{os.DevNull, dir + "/gozd.log", dir + "/gozd.log"} {
		if got, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", d.pid, fd)); err != nil || got != want {
			t.Errorf("daemon fd %d is %q (%v), want %s", fd, got, err, want)
		}
	}
	for _, g := range []string{"echo", "web", "secure", "app"} {
		if d.addrs[g] == "" {
			t.Errorf("start line %q has no group %s", d.line, g)
		}
	}
	if got := opsGet(t, d.addrs["web"], "/"); !strings.HasPrefix(got, "hello from gozd http v1") {
		t.Errorf("GET / = %q", got)
	}
	if log := opsReadFile(t, dir+"/gozd.log"); !strings.Contains(log, "role=master") || !strings.Contains(log, `msg="worker ready"`) {
		t.Errorf("log file lacks the master's lines:\n%s", log)
	}

	w := d.worker()
	r := d.ctl("quit")
	if r.code != 0 || !strings.Contains(r.stdout, strconv.Itoa(d.pid)) {
		t.Fatalf("-s quit: %v", r)
	}
	// -s quit returns once the daemon is gone, and it cleaned up.
	for _, pid := range []int{d.pid, w} {
		if processAlive(pid) {
			t.Errorf("pid %d still alive after -s quit returned", pid)
		}
	}
	for _, f := range []string{"gozd.pid", "gozd.pid.state", "app.sock"} {
		if opsExists(filepath.Join(dir, f)) {
			t.Errorf("%s left behind after -s quit", f)
		}
	}
}

// TestOpsDefaultPidFile: without pidfile and logfile directives, root's
// pid, state and log files are in /run/gozd/<config name>-<hash of its
// path>/, a directory only root can enter, where -s finds them.
func TestOpsDefaultPidFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: root's default directory is what is tested")
	}
	bin := buildBinary(t, "./examples/http", "v1")
	dir := opsDir(t)
	conf := writeFile(t, dir, "web.conf", "[web]\nmode http\nlisten 127.0.0.1:0\n")
	sum := sha256.Sum256([]byte(conf))
	runDir := "/run/gozd/web-" + hex.EncodeToString(sum[:4])
	pidPath := runDir + "/web.pid"
	t.Cleanup(func() { os.RemoveAll(runDir) })

	d := opsStart(t, bin, conf)
	if got := strings.TrimSpace(opsReadFile(t, pidPath)); got != strconv.Itoa(d.pid) {
		t.Errorf("default pid file %s holds %q, want %d", pidPath, got, d.pid)
	}
	if !opsExists(pidPath + ".state") {
		t.Errorf("no state file %s.state", pidPath)
	}
	if log := opsReadFile(t, runDir+"/web.log"); !strings.Contains(log, `msg="worker ready"`) {
		t.Errorf("default log file %s lacks the master's lines:\n%s", runDir+"/web.log", log)
	}
	for _, p := range []string{"/run/gozd", runDir} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || fi.Mode().Perm() != 0o700 || st.Uid != 0 {
			t.Errorf("%s: mode %v, owner uid %d; want a directory 0700 of root's", p, fi.Mode(), st.Uid)
		}
	}
	if r := d.ctl("quit"); r.code != 0 {
		t.Fatalf("-s quit: %v", r)
	}
	if opsExists(pidPath) {
		t.Errorf("default pid file %s left behind after -s quit", pidPath)
	}
}

// TestOpsSecondStart: a start while the daemon runs is refused and names it.
func TestOpsSecondStart(t *testing.T) {
	bin := buildBinary(t, "./examples/mixed", "v1")
	dir := opsDir(t)
	conf := opsMixedConf(t, dir, "a.conf", "")
	d := opsStart(t, bin, conf)
	w := d.worker()

	r := opsRun(t, bin, "-c", conf)
	if r.code == 0 || !strings.Contains(r.stderr, "already running") || !strings.Contains(r.stderr, fmt.Sprintf("pid %d", d.pid)) {
		t.Errorf("second start: %v; want refused, naming pid %d", r, d.pid)
	}
	r = opsRun(t, bin, "-f", "-c", conf)
	if r.code == 0 || !strings.Contains(r.stderr, fmt.Sprintf("pid %d", d.pid)) {
		t.Errorf("second start with -f: %v; want refused, naming pid %d", r, d.pid)
	}
	if got := d.worker(); got != w || !processAlive(d.pid) {
		t.Errorf("after refused starts: master alive %v, worker %d, want %d", processAlive(d.pid), got, w)
	}
	if got := opsGet(t, d.addrs["web"], "/"); !strings.Contains(got, fmt.Sprintf("pid %d", w)) {
		t.Errorf("GET / = %q, want worker %d", got, w)
	}
}

// TestOpsStalePidFile: a pid file nobody holds the lock of, left by a
// killed daemon or naming some unrelated live process, is stale: -s does
// not signal, a start takes over.
func TestOpsStalePidFile(t *testing.T) {
	bin := buildBinary(t, "./examples/mixed", "v1")

	t.Run("killed daemon", func(t *testing.T) {
		dir := opsDir(t)
		conf := opsMixedConf(t, dir, "a.conf", "")
		d := opsStart(t, bin, conf)
		w := d.worker()
		syscall.Kill(d.pid, syscall.SIGKILL)
		syscall.Kill(w, syscall.SIGKILL)
		waitUntil(t, "the killed daemon gone", func() bool { return !processAlive(d.pid) && !processAlive(w) })
		for _, f := range []string{"gozd.pid", "app.sock"} {
			if !opsExists(filepath.Join(dir, f)) {
				t.Fatalf("%s gone with a SIGKILL: the test proves nothing", f)
			}
		}
		r := d.ctl("quit")
		if r.code == 0 || !strings.Contains(r.stderr, "stale") {
			t.Errorf("-s quit against a killed daemon: %v; want a stale pid file error", r)
		}
		d2 := opsStart(t, bin, conf)
		if d2.pid == d.pid {
			t.Fatalf("same pid %d", d.pid)
		}
		if got := strings.TrimSpace(opsReadFile(t, dir+"/gozd.pid")); got != strconv.Itoa(d2.pid) {
			t.Errorf("pid file holds %q, want %d", got, d2.pid)
		}
		// The stale socket file was replaced by a served socket.
		c, err := net.DialTimeout("unix", d2.addrs["app"], waitTimeout)
		if err != nil {
			t.Errorf("fcgi socket of the new daemon: %v", err)
		} else {
			c.Close()
		}
		if r := d2.ctl("quit"); r.code != 0 {
			t.Errorf("-s quit: %v", r)
		}
	})

	t.Run("unrelated live pid", func(t *testing.T) {
		dir := opsDir(t)
		conf := opsMixedConf(t, dir, "a.conf", "")
		// The test's own pid, without the lock: any signal sent to it
		// (QUIT, INT, HUP, USR1) would end this test binary.
		writeFile(t, dir, "gozd.pid", fmt.Sprintf("%d\n", os.Getpid()))
		for _, cmd := range []string{"quit", "stop", "reload", "reopen"} {
			r := opsRun(t, bin, "-s", cmd, "-c", conf)
			if r.code == 0 || !strings.Contains(r.stderr, "no daemon is running") || !strings.Contains(r.stderr, "stale") {
				t.Errorf("-s %s with a pid file naming the test: %v; want not running, stale", cmd, r)
			}
		}
		d := opsStart(t, bin, conf)
		if got := strings.TrimSpace(opsReadFile(t, dir+"/gozd.pid")); got != strconv.Itoa(d.pid) {
			t.Errorf("pid file holds %q, want %d", got, d.pid)
		}
		if r := d.ctl("quit"); r.code != 0 {
			t.Errorf("-s quit: %v", r)
		}
	})
}

// TestOpsControl drives one live daemon through the -s commands: reload,
// reopen, refused reloads (broken config, another config's daemon), stop.
func TestOpsControl(t *testing.T) {
	bin := buildBinary(t, "./examples/mixed", "v1")
	dir := opsDir(t)
	conf := opsMixedConf(t, dir, "a.conf", "")
	good := opsReadFile(t, conf)
	logPath := dir + "/gozd.log"
	d := opsStart(t, bin, conf)
	w := d.worker()
	reloadsAsked := func() int { return strings.Count(opsReadFile(t, logPath), `msg="reload asked"`) }

	t.Run("reload", func(t *testing.T) {
		r := d.ctl("reload")
		var master, newW, oldW int
		if _, err := fmt.Sscanf(r.stdout, "gozd: reloaded pid %d: worker %d replaced worker %d", &master, &newW, &oldW); r.code != 0 || err != nil {
			t.Fatalf("-s reload: %v (%v)", r, err)
		}
		if master != d.pid || oldW != w || newW == w {
			t.Fatalf("-s reload: %q; want master %d, old worker %d, a new one", r.stdout, d.pid, w)
		}
		if want := fmt.Sprintf(", binary %s, build github.com/gozd/gozd/examples/mixed", bin); !strings.Contains(r.stdout, want) {
			t.Errorf("-s reload: %q; want %q", r.stdout, want)
		}
		waitUntil(t, "the old worker gone", func() bool { return !processAlive(oldW) })
		if got := d.worker(); got != newW {
			t.Fatalf("worker %d serves, want %d", got, newW)
		}
		if got := opsGet(t, d.addrs["web"], "/"); !strings.Contains(got, fmt.Sprintf("pid %d", newW)) {
			t.Errorf("GET / = %q, want worker %d", got, newW)
		}
		w = newW
	})

	t.Run("reopen", func(t *testing.T) {
		rotated := logPath + ".1"
		if err := os.Rename(logPath, rotated); err != nil {
			t.Fatal(err)
		}
		r := d.ctl("reopen")
		if want := fmt.Sprintf("gozd: pid %d reopened its log\n", d.pid); r.code != 0 || r.stdout != want {
			t.Fatalf("-s reopen: %v", r)
		}
		waitUntil(t, "a new log file with the reopen line", func() bool {
			b, _ := os.ReadFile(logPath)
			return strings.Contains(string(b), `msg="log reopened"`)
		})
		before := opsReadFile(t, rotated)
		// More of the master's lines (and a worker's, copied by it).
		if r := d.ctl("reload"); r.code != 0 {
			t.Fatalf("-s reload: %v", r)
		}
		w = d.worker()
		if log := opsReadFile(t, logPath); !strings.Contains(log, `msg="reload asked"`) || !strings.Contains(log, fmt.Sprintf("worker=%d", w)) {
			t.Errorf("the reopened log lacks the reload's lines:\n%s", log)
		}
		if after := opsReadFile(t, rotated); after != before {
			t.Errorf("the rotated log was written to after the reopen:\n%s", strings.TrimPrefix(after, before))
		}
	})

	t.Run("reload with a broken config", func(t *testing.T) {
		asked := reloadsAsked()
		broken := strings.Replace(good, "mode http\n", "mode htttp\n", 1)
		line := strings.Count(broken[:strings.Index(broken, "htttp")], "\n") + 1
		writeFile(t, dir, "a.conf", broken)
		defer writeFile(t, dir, "a.conf", good)
		r := d.ctl("reload")
		if want := fmt.Sprintf("%s:%d:", conf, line); r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("-s reload with a broken config: %v; want non-zero and %q", r, want)
		}
		if got := d.worker(); got != w || reloadsAsked() != asked {
			t.Errorf("daemon was signalled: worker %d (was %d), %d reloads asked (were %d)", got, w, reloadsAsked(), asked)
		}
	})

	t.Run("another config", func(t *testing.T) {
		// Same pid file, another config file: that daemon is not ours.
		other := writeFile(t, dir, "b.conf", good)
		asked := reloadsAsked()
		for _, cmd := range []string{"reload", "quit", "stop"} {
			r := opsRun(t, bin, "-s", cmd, "-c", other)
			if r.code == 0 || !strings.Contains(r.stderr, "not signalled") {
				t.Errorf("-s %s -c %s: %v; want refused, not signalled", cmd, other, r)
			}
		}
		if !processAlive(d.pid) || d.worker() != w || reloadsAsked() != asked {
			t.Errorf("daemon of %s was signalled by -s -c %s", conf, other)
		}
	})

	t.Run("stop", func(t *testing.T) {
		r := d.ctl("stop")
		if r.code != 0 || !strings.Contains(r.stdout, strconv.Itoa(d.pid)) {
			t.Fatalf("-s stop: %v", r)
		}
		for _, pid := range []int{d.pid, w} {
			if processAlive(pid) {
				t.Errorf("pid %d still alive after -s stop returned", pid)
			}
		}
		for _, f := range []string{"gozd.pid", "app.sock"} {
			if opsExists(filepath.Join(dir, f)) {
				t.Errorf("%s left behind after -s stop", f)
			}
		}
	})
}

// TestOpsControlNoDaemon: -s with no daemon (no pid file, or a stale one)
// fails and says so.
func TestOpsControlNoDaemon(t *testing.T) {
	bin := buildBinary(t, "./examples/mixed", "v1")
	dir := opsDir(t)
	conf := opsMixedConf(t, dir, "a.conf", "")
	// A pid that surely is no daemon's: a process that has exited.
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, pidFile, want string
	}{
		{"no pid file", "", "no pid file"},
		{"stale pid file", fmt.Sprintf("%d\n", done.Process.Pid), "stale pid file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(dir + "/gozd.pid")
			if tc.pidFile != "" {
				writeFile(t, dir, "gozd.pid", tc.pidFile)
			}
			for _, cmd := range []string{"stop", "quit", "reopen", "reload"} {
				r := opsRun(t, bin, "-s", cmd, "-c", conf)
				if r.code == 0 || !strings.Contains(r.stderr, "no daemon is running") || !strings.Contains(r.stderr, tc.want) {
					t.Errorf("-s %s: %v; want non-zero, %q", cmd, r, tc.want)
				}
			}
		})
	}
}

// TestOpsPidFileNotCreatable: a pid file that cannot be created fails the
// start with a message saying so. (As root, permissions do not stop a
// create, so the pid file's parent is a regular file instead.)
func TestOpsPidFileNotCreatable(t *testing.T) {
	src := buildBinary(t, "./examples/http", "v1")
	dir := opsDir(t)
	bin := opsPrivateBinary(t, src, dir)
	writeFile(t, dir, "notadir", "")
	pidPath := dir + "/notadir/gozd.pid"
	conf := writeFile(t, dir, "a.conf", fmt.Sprintf("pidfile %s\nlogfile %s/gozd.log\n[web]\nmode http\nlisten 127.0.0.1:0\n", pidPath, dir))
	for _, args := range [][]string{{"-c", conf}, {"-f", "-c", conf}} {
		r := opsRun(t, bin, args...)
		if r.code == 0 || !strings.Contains(r.stderr, "pid file") || !strings.Contains(r.stderr, dir+"/notadir") {
			t.Errorf("%s: %v; want non-zero and a pid file error naming %s", strings.Join(args, " "), r, dir+"/notadir")
		}
	}
	waitUntil(t, "no process of "+bin, func() bool { return len(opsProcsRunning(bin)) == 0 })
}

// opsBuildCrashDaemon builds internal/crashdaemon with the given behavior
// into dir.
func opsBuildCrashDaemon(t *testing.T, dir, behavior string) string {
	t.Helper()
	bin := filepath.Join(dir, "crashdaemon-"+behavior)
	cmd := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.behavior="+behavior, "./internal/crashdaemon")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build crashdaemon: %v\n%s", err, b)
	}
	return bin
}

// TestOpsFailedStart: a start that fails says why, exits non-zero, and
// leaves nothing behind: no process, no pid file, no socket file, the port
// free.
func TestOpsFailedStart(t *testing.T) {
	httpBin := buildBinary(t, "./examples/http", "v1")
	for _, tc := range []struct {
		name string
		bin  func(t *testing.T, dir string) string
		conf string // %[1]s: dir, %[2]s: tcp address
		busy bool   // hold the tcp address while starting
		want []string
		line string // the message must name the config's line holding this
	}{
		{
			name: "busy address",
			bin:  func(t *testing.T, dir string) string { return opsPrivateBinary(t, httpBin, dir) },
			conf: "[web]\nmode http\nlisten %[2]s\n",
			busy: true,
			want: []string{"address already in use", `group "web"`},
		},
		{
			name: "broken config",
			bin:  func(t *testing.T, dir string) string { return opsPrivateBinary(t, httpBin, dir) },
			conf: "[web]\nmode http\nlisten %[2]s\nbogus 1\n",
			want: []string{"bogus"},
			line: "bogus",
		},
		{
			name: "worker crashes",
			bin:  func(t *testing.T, dir string) string { return opsBuildCrashDaemon(t, dir, "crash") },
			conf: "[web]\nmode http\nlisten %[2]s\n",
			want: []string{"exit status 3", "crashdaemon: giving up on purpose"},
		},
		{
			name: "worker never ready",
			bin:  func(t *testing.T, dir string) string { return opsBuildCrashDaemon(t, dir, "hang") },
			conf: "ready_timeout 2s\n[web]\nmode http\nlisten %[2]s\n",
			want: []string{"ready_timeout 2s"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := opsDir(t)
			bin := tc.bin(t, dir)
			addr := freePort(t)
			var holder net.Listener
			if tc.busy {
				var err error
				if holder, err = net.Listen("tcp", addr); err != nil {
					t.Fatal(err)
				}
				defer holder.Close()
			}
			conf := writeFile(t, dir, "a.conf", fmt.Sprintf("pidfile %[1]s/gozd.pid\nlogfile %[1]s/gozd.log\n", dir)+
				fmt.Sprintf(tc.conf, dir, addr)+
				fmt.Sprintf("\n[app]\nmode http\nlisten %s/app.sock\n", dir))
			want := tc.want
			if tc.line != "" {
				text := opsReadFile(t, conf)
				n := strings.Count(text[:strings.Index(text, tc.line)], "\n") + 1
				want = append(want, fmt.Sprintf("%s:%d:", conf, n))
			}
			r := opsRun(t, bin, "-c", conf)
			if r.code == 0 {
				t.Fatalf("start succeeded: %v", r)
			}
			for _, w := range want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("start: %v; want %q in the message", r, w)
				}
			}
			waitUntil(t, "no process of "+bin, func() bool { return len(opsProcsRunning(bin)) == 0 })
			for _, f := range []string{"gozd.pid", "gozd.pid.state", "app.sock"} {
				if opsExists(filepath.Join(dir, f)) {
					t.Errorf("%s left behind by a failed start", f)
				}
			}
			if holder != nil {
				holder.Close()
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("the port of a failed start is not free: %v", err)
			}
			ln.Close()
		})
	}
}

// TestOpsPrivileges: as root, workers run as the configured user and group
// with the configured RLIMIT_NOFILE, while the master stays root; a key the
// workers could not read fails the start.
func TestOpsPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: dropping privileges to another user is what is tested")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody on this system")
	}
	nogroup, err := user.LookupGroup("nogroup")
	if err != nil {
		t.Skip("no group nogroup on this system")
	}
	// A worker running as nobody must be able to execute the binary; the
	// shared build directory is private to root.
	dir := opsDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := opsPrivateBinary(t, buildBinary(t, "./examples/http", "v1"), dir)

	t.Run("workers drop privileges", func(t *testing.T) {
		conf := writeFile(t, dir, "a.conf", fmt.Sprintf(`pidfile %[1]s/a.pid
logfile %[1]s/a.log
user nobody
group nogroup
maxfds 4096
[web]
mode http
listen 127.0.0.1:0
`, dir))
		d := opsStart(t, bin, conf)
		w := d.worker()
		for _, tc := range []struct {
			whose     string
			pid       int
			field, id string
		}{
			{"worker", w, "Uid:", nobody.Uid},
			{"worker", w, "Gid:", nogroup.Gid},
			{"master", d.pid, "Uid:", "0"},
			{"master", d.pid, "Gid:", "0"},
		} {
			// Real, effective, saved and filesystem ids alike.
			got := strings.Fields(opsProcLine(t, tc.pid, "status", tc.field))[1:]
			if want := []string{tc.id, tc.id, tc.id, tc.id}; strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%s %s %v, want %v", tc.whose, tc.field, got, want)
			}
		}
		limits := strings.Fields(opsProcLine(t, w, "limits", "Max open files"))
		if limits[3] != "4096" {
			t.Errorf("worker's soft RLIMIT_NOFILE %s, want 4096 (%v)", limits[3], limits)
		}
		if got := opsGet(t, d.addrs["web"], "/"); !strings.Contains(got, fmt.Sprintf("pid %d", w)) {
			t.Errorf("GET / = %q", got)
		}
		if r := d.ctl("quit"); r.code != 0 {
			t.Errorf("-s quit: %v", r)
		}
	})

	t.Run("key only root can read", func(t *testing.T) {
		key, cert := writeKeyPair(t, dir) // the key is 0600, root's
		conf := writeFile(t, dir, "b.conf", fmt.Sprintf(`pidfile %[1]s/b.pid
logfile %[1]s/b.log
user nobody
group nogroup
[web]
mode https
listen 127.0.0.1:0
key %[2]s
cert %[3]s
`, dir, key, cert))
		r := opsRun(t, bin, "-c", conf)
		if r.code == 0 || !strings.Contains(r.stderr, key) || !strings.Contains(r.stderr, "not readable") {
			t.Errorf("start: %v; want non-zero and %s not readable", r, key)
		}
		waitUntil(t, "no process of "+bin, func() bool { return len(opsProcsRunning(bin)) == 0 })
	})
}

// opsStartCmd starts cmd like startProcess does, output captured, stopped
// by pid at cleanup.
func opsStartCmd(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{t: t, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", cmd.Path, p.out.String())
		}
	})
	return p
}

// TestOpsSystemdNotify plays systemd's notify socket for a Type=notify-reload
// unit: READY=1 once serving, RELOADING=1 with MONOTONIC_USEC on SIGHUP and
// READY=1 again, STOPPING=1 on SIGQUIT.
func TestOpsSystemdNotify(t *testing.T) {
	bin := buildBinary(t, "./examples/mixed", "v1")
	dir := opsDir(t)
	conf := opsMixedConf(t, dir, "a.conf", "")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: dir + "/notify.sock", Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()

	var got []string
	next := func(want string) string {
		t.Helper()
		buf := make([]byte, 4096)
		sock.SetReadDeadline(time.Now().Add(waitTimeout))
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s on the notify socket (got so far %q): %v", want, got, err)
		}
		msg := string(buf[:n])
		got = append(got, msg)
		if !strings.HasPrefix(msg, want) {
			t.Fatalf("notify message %q, want %s (so far %q)", msg, want, got)
		}
		return msg
	}

	cmd := exec.Command(bin, "-f", "-c", conf)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+dir+"/notify.sock")
	p := opsStartCmd(t, cmd)
	next("READY=1")
	p.waitOutput("gozd: started")

	p.signal(syscall.SIGHUP)
	msg := next("RELOADING=1")
	// Assignments are newline-separated; a final newline is allowed.
	lines := strings.Split(strings.TrimSuffix(msg, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("reloading message %q, want RELOADING=1 and MONOTONIC_USEC=", msg)
	}
	if usec, err := strconv.ParseUint(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64); err != nil || usec == 0 {
		t.Errorf("bad MONOTONIC_USEC in %q", msg)
	}
	next("READY=1")

	p.signal(syscall.SIGQUIT)
	next("STOPPING=1")
	if code := p.wait(); code != 0 {
		t.Errorf("exit status %d after SIGQUIT, want 0", code)
	}
}

// TestOpsSocketActivation passes listening sockets the way systemd does
// (fds from 3, LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES) and checks the daemon
// serves on them instead of binding its own: matched by name, or by address
// when the names say nothing.
func TestOpsSocketActivation(t *testing.T) {
	bin := buildBinary(t, "./examples/mixed", "v1")
	for _, tc := range []struct {
		name    string
		fdNames string
	}{
		{"by name", "web:echo"},
		{"by address", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := opsDir(t)
			tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer tcpLn.Close()
			unixPath := dir + "/echo.sock"
			unixLn, err := net.Listen("unix", unixPath)
			if err != nil {
				t.Fatal(err)
			}
			defer unixLn.Close()
			tcpFile, err := tcpLn.(*net.TCPListener).File()
			if err != nil {
				t.Fatal(err)
			}
			defer tcpFile.Close()
			unixFile, err := unixLn.(*net.UnixListener).File()
			if err != nil {
				t.Fatal(err)
			}
			defer unixFile.Close()

			key, cert := writeKeyPair(t, dir)
			conf := writeFile(t, dir, "a.conf", fmt.Sprintf(`pidfile %[1]s/gozd.pid
drain_timeout 5s
[echo]
mode tcp
listen %[2]s
[web]
mode http
listen %[3]s
[secure]
mode https
listen 127.0.0.1:0
key %[4]s
cert %[5]s
[app]
mode fcgi
listen 127.0.0.1:0
`, dir, unixPath, tcpLn.Addr(), key, cert))

			// LISTEN_PID must be the daemon's pid: the shell sets it to
			// its own and execs the daemon, which keeps the pid.
			cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin, "-f", "-c", conf)
			cmd.Env = append(os.Environ(), "LISTEN_FDS=2")
			if tc.fdNames != "" {
				cmd.Env = append(cmd.Env, "LISTEN_FDNAMES="+tc.fdNames)
			}
			cmd.ExtraFiles = []*os.File{tcpFile, unixFile}
			p := opsStartCmd(t, cmd)
			_, addrs := startedAddrs(t, p.waitOutput("gozd: started"))
			if addrs["web"] != tcpLn.Addr().String() || addrs["echo"] != unixPath {
				t.Errorf("start line: web on %s, echo on %s; want the passed sockets %s and %s", addrs["web"], addrs["echo"], tcpLn.Addr(), unixPath)
			}
			// The test's own listeners are the daemon's: connecting to
			// them reaches its worker.
			if got := opsGet(t, tcpLn.Addr().String(), "/"); !strings.HasPrefix(got, "hello from gozd http v1") {
				t.Errorf("GET / on the passed tcp socket = %q", got)
			}
			if got := opsEcho(t, "unix", unixPath, "ping"); got != "ping" {
				t.Errorf("echo on the passed unix socket = %q", got)
			}

			p.signal(syscall.SIGQUIT)
			if code := p.wait(); code != 0 {
				t.Errorf("exit status %d after SIGQUIT, want 0", code)
			}
			// The socket file belongs to whoever passed the socket
			// (systemd's socket unit), which keeps serving it.
			if !opsExists(unixPath) {
				t.Errorf("the daemon removed the socket file %s it was passed", unixPath)
			}
		})
	}
}

// opsHolds reports whether process pid has the pipe (or file) of inode ino
// open.
func opsHolds(pid int, ino uint64) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if link == fmt.Sprintf("pipe:[%d]", ino) {
			return true
		}
	}
	return false
}

// TestOpsNoInheritedFiles: a file the caller left open (without
// close-on-exec) must not stay open in the daemon: a background daemon
// holding its launcher's pipe keeps a caller such as `out=$(app -c conf)`,
// a CI step or an ssh session waiting for ever. In the foreground the master
// is the caller's own process, but its workers must not hold it either.
func TestOpsNoInheritedFiles(t *testing.T) {
	bin := buildBinary(t, "./examples/mixed", "v1")
	for _, foreground := range []bool{false, true} {
		t.Run(fmt.Sprintf("foreground=%v", foreground), func(t *testing.T) {
			dir := opsDir(t)
			conf := opsMixedConf(t, dir, "a.conf", "")
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pr.Close()
			defer pw.Close()
			fi, err := pw.Stat()
			if err != nil {
				t.Fatal(err)
			}
			ino := fi.Sys().(*syscall.Stat_t).Ino
			devnull, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			defer devnull.Close()

			args := []string{"-c", conf}
			if foreground {
				args = append([]string{"-f"}, args...)
			}
			cmd := exec.Command(bin, args...)
			// The pipe at fd 12, above those gozd hands to a worker, and
			// /dev/null below it: all left open by the caller, as a
			// shell or a CI runner may.
			for len(cmd.ExtraFiles) < 9 {
				cmd.ExtraFiles = append(cmd.ExtraFiles, devnull)
			}
			cmd.ExtraFiles = append(cmd.ExtraFiles, pw)
			p := opsStartCmd(t, cmd)
			pid, _ := startedAddrs(t, p.waitOutput("gozd: started"))
			opsKillOnCleanup(t, pid)
			pw.Close()
			w := (&opsDaemon{t: t, pid: pid}).worker()
			if opsHolds(w, uint64(ino)) {
				t.Errorf("worker %d holds the caller's pipe", w)
			}
			if foreground {
				return
			}
			if code := p.wait(); code != 0 {
				t.Fatalf("launcher exit status %d", code)
			}
			if opsHolds(pid, uint64(ino)) {
				t.Errorf("background master %d holds the launcher's caller's pipe", pid)
			}
			// With every writer gone, the reader sees EOF.
			pr.SetReadDeadline(time.Now().Add(waitTimeout))
			if n, err := pr.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("read from the caller's pipe: %d, %v; want EOF (the daemon holds it)", n, err)
			}
		})
	}
}

// opsUnitValues returns the values of key in a systemd unit file.
func opsUnitValues(t *testing.T, path, key string) []string {
	t.Helper()
	var vals []string
	for _, l := range strings.Split(opsReadFile(t, path), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+"="); ok {
			vals = append(vals, v)
		}
	}
	return vals
}

// TestOpsExampleDeployFiles keeps examples/systemd and examples/container
// in step with gozd: their configs parse, each socket unit names a group of
// the config and the group's own address, the services run the master in the
// foreground with a stop timeout longer than the drain.
func TestOpsExampleDeployFiles(t *testing.T) {
	dir := t.TempDir()
	key, cert := writeKeyPair(t, dir)
	parse := func(t *testing.T, path string) *gozd.Config {
		t.Helper()
		// The key and cert are the deployer's; stand-ins do here.
		text := regexp.MustCompile(`(?m)^(key|cert)\s+\S+`).ReplaceAllStringFunc(opsReadFile(t, path), func(s string) string {
			if strings.HasPrefix(s, "key") {
				return "key " + key
			}
			return "cert " + cert
		})
		cfg, err := gozd.ParseConfig(path, strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	t.Run("systemd", func(t *testing.T) {
		cfg := parse(t, "examples/systemd/gozd-example.conf")
		sockets, _ := filepath.Glob("examples/systemd/*.socket")
		if len(sockets) == 0 {
			t.Fatal("no socket units")
		}
		for _, s := range sockets {
			names := opsUnitValues(t, s, "FileDescriptorName")
			listen := opsUnitValues(t, s, "ListenStream")
			if len(names) != 1 || len(listen) != 1 {
				t.Errorf("%s: want one FileDescriptorName and one ListenStream, got %q and %q", s, names, listen)
				continue
			}
			g, ok := cfg.Group(names[0])
			if !ok {
				t.Errorf("%s: FileDescriptorName=%s is no group of gozd-example.conf", s, names[0])
			} else if g.Address != listen[0] {
				t.Errorf("%s: ListenStream=%s, but group %s listens on %s", s, listen[0], g.Name, g.Address)
			}
		}
		services, _ := filepath.Glob("examples/systemd/*.service")
		for _, s := range services {
			start := opsUnitValues(t, s, "ExecStart")
			if len(start) != 1 || !strings.Contains(start[0], " -f ") || !strings.HasSuffix(start[0], " -c /etc/gozd-example/gozd-example.conf") {
				t.Errorf("%s: ExecStart=%q, want the master in the foreground (-f) with -c gozd-example.conf", s, start)
			}
			if got := opsUnitValues(t, s, "KillSignal"); len(got) != 1 || got[0] != "SIGQUIT" {
				t.Errorf("%s: KillSignal=%q, want SIGQUIT", s, got)
			}
			stop := opsUnitValues(t, s, "TimeoutStopSec")
			d, err := time.ParseDuration(strings.Join(stop, ""))
			if err != nil || d < cfg.ShutdownDelay+cfg.DrainTimeout+5*time.Second {
				t.Errorf("%s: TimeoutStopSec=%q, want at least shutdown_delay %s + drain_timeout %s + 5s", s, stop, cfg.ShutdownDelay, cfg.DrainTimeout)
			}
			if got := opsUnitValues(t, s, "Restart"); len(got) != 1 || got[0] != "on-failure" {
				t.Errorf("%s: Restart=%q, want on-failure", s, got)
			}
		}
	})

	t.Run("container", func(t *testing.T) {
		cfg := parse(t, "examples/container/gozd.conf")
		df := opsReadFile(t, "examples/container/Dockerfile")
		if !strings.Contains(df, `ENTRYPOINT ["/usr/local/bin/gozd-example", "-f", "-c", "/etc/gozd/gozd.conf"]`) {
			t.Errorf("Dockerfile: want the master as PID 1 in the foreground, exec form")
		}
		for _, g := range cfg.Groups {
			if g.Network == "tcp" && strings.HasPrefix(g.Address, "127.") {
				t.Errorf("group %s listens on %s, out of reach of a published port", g.Name, g.Address)
			}
		}
	})

	t.Run("kubernetes", func(t *testing.T) {
		cfg := parse(t, "examples/kubernetes/gozd.conf")
		dep := opsReadFile(t, "examples/kubernetes/deployment.yaml")
		field := func(name string) string {
			m := regexp.MustCompile(`(?m)^\s*` + name + `:\s*(.+)$`).FindStringSubmatch(dep)
			if m == nil {
				t.Fatalf("deployment.yaml: no %s", name)
			}
			return strings.TrimSpace(m[1])
		}
		grace, err := strconv.Atoi(field("terminationGracePeriodSeconds"))
		if need := cfg.ShutdownDelay + cfg.DrainTimeout + 5*time.Second; err != nil || time.Duration(grace)*time.Second < need {
			t.Errorf("terminationGracePeriodSeconds %d, want at least shutdown_delay + drain_timeout + 5s = %s", grace, need)
		}
		if cfg.ShutdownDelay <= 0 {
			t.Errorf("no shutdown_delay: the pod would refuse connections until the endpoints are updated")
		}
		web, ok := cfg.Group("web")
		if !ok || web.Health == "" {
			t.Fatalf("no health path on the web group")
		}
		probe := dep[strings.Index(dep, "readinessProbe:"):]
		if m := regexp.MustCompile(`path:\s*(\S+)`).FindStringSubmatch(probe); m == nil || m[1] != web.Health {
			t.Errorf("readiness probe path %v, want the health path %s", m, web.Health)
		}
		if strings.Contains(dep, "preStop:") {
			t.Errorf("deployment.yaml has a preStop hook: the lame duck makes it needless")
		}
		if cmd := field("command"); !strings.Contains(cmd, `"-f"`) || !strings.Contains(cmd, "/etc/gozd/conf/gozd.conf") {
			t.Errorf("command %s: want the master in the foreground with the mounted config", cmd)
		}
	})
}

// TestOpsRuntimeDirRemoved: a foreground daemon with the default pid file
// leaves no runtime directory behind once it quits (one directory a config
// path would otherwise pile up in /run/gozd); a background one keeps it for
// its log.
func TestOpsRuntimeDirRemoved(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: root's default directory is what is tested")
	}
	bin := buildBinary(t, "./examples/http", "v1")
	conf := writeFile(t, opsDir(t), "web.conf", "[web]\nmode http\nlisten 127.0.0.1:0\n")
	sum := sha256.Sum256([]byte(conf))
	runDir := "/run/gozd/web-" + hex.EncodeToString(sum[:4])
	t.Cleanup(func() { os.RemoveAll(runDir) })

	p := startProcess(t, bin, "-f", "-c", conf)
	p.waitOutput("gozd: started")
	if !opsExists(runDir + "/web.pid") {
		t.Fatalf("no pid file in %s while the daemon runs", runDir)
	}
	p.signal(syscall.SIGQUIT)
	if code := p.wait(); code != 0 {
		t.Fatalf("quit: exit %d\n%s", code, p.out.String())
	}
	if opsExists(runDir) {
		t.Errorf("runtime directory %s left behind by a foreground daemon that quit", runDir)
	}
}

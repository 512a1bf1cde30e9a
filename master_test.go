package gozd_test

// The master's robustness, tried on real processes: signals that arrive
// while a process starts, a log output nobody reads, a reload stuck reading
// its config, and the master killed on its own.

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gozd/gozd"
	"golang.org/x/sys/unix"
)

// The test binary doubles as a gozd program when envTestProgram is set: the
// tests start it as a master, which starts it again as its workers. Unlike
// internal/testdaemon it can reach into gozd's test hooks.
const (
	envTestProgram = "GOZD_TEST_PROGRAM"
	envTestChatty  = "GOZD_TEST_CHATTY" // its workers write log lines to stderr without pause
	envTestHold    = "GOZD_TEST_HOLD"   // a file: while it exists, reloads wait before reading the config
)

func init() {
	if _, ok := os.LookupEnv(envTestProgram); ok {
		testProgram()
	}
}

// testProgram is the gozd program the test binary runs as: one http group
// "web" answering "pid N" (after sleeping for /sleep?d=DURATION).
func testProgram() {
	if hold := os.Getenv(envTestHold); hold != "" {
		gozd.DelayReloadConfig(func() {
			os.WriteFile(hold+".entered", nil, 0o644)
			for opsExists(hold) {
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	done := gozd.Daemonize()
	if os.Getenv(envTestChatty) != "" {
		go func() {
			line := fmt.Sprintf("chatter from pid %d %s\n", os.Getpid(), strings.Repeat("x", 80))
			for {
				for range 10 {
					os.Stderr.WriteString(line)
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	err := gozd.RegistHandler("web", "web", func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("d")); err == nil && r.URL.Path == "/sleep" {
			time.Sleep(d)
		}
		fmt.Fprintf(w, "pid %d\n", os.Getpid())
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	<-done
	os.Exit(0)
}

// testProgramCmd is the command that runs the test binary as testProgram
// with args and the extra environment env.
func testProgramCmd(t *testing.T, args []string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(append(os.Environ(), envTestProgram+"=1"), env...)
	return cmd
}

// testProgramConf writes a config for testProgram into dir.
func testProgramConf(t *testing.T, dir string) string {
	t.Helper()
	return writeFile(t, dir, "gozd.conf", fmt.Sprintf("pidfile %s/gozd.pid\ndrain_timeout 5s\n[web]\nmode http\nlisten 127.0.0.1:0\n", dir))
}

// servedBy does GET path on the http address addr and returns the pid in the
// answer ("pid N" from testProgram, "VERSION N" from internal/testdaemon).
func servedBy(addr, path string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if resp.StatusCode != http.StatusOK || len(f) != 2 {
		return 0, fmt.Errorf("GET %s%s: %s %q", addr, path, resp.Status, b)
	}
	return strconv.Atoi(f[1])
}

// waitServedByOther waits until addr is served by a pid other than old, and
// returns it.
func waitServedByOther(t *testing.T, addr string, old int) int {
	t.Helper()
	var pid int
	waitUntil(t, fmt.Sprintf("%s served by a worker other than %d", addr, old), func() bool {
		p, err := servedBy(addr, "/")
		pid = p
		return err == nil && p != old
	})
	return pid
}

// onCreate calls f once, as soon as inotify reports a file named name created
// in or moved into dir: sooner than polling could. stop ends the watch.
func onCreate(t *testing.T, dir, name string, f func()) (stop func()) {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	var quit atomic.Bool
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		buf := make([]byte, 64<<10)
		for !quit.Load() {
			if n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 20); n <= 0 || err != nil {
				continue
			}
			n, err := unix.Read(fd, buf)
			for off := 0; err == nil && off+unix.SizeofInotifyEvent <= n; {
				nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
				evName := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen]), "\x00")
				if evName == name {
					f()
					return
				}
				off += unix.SizeofInotifyEvent + nameLen
			}
		}
	}()
	return func() {
		quit.Store(true)
		<-finished
		unix.Close(fd)
	}
}

// namedWorker reports whether worker pid has named itself ("app: worker
// N", cut at 15 bytes), which it does once Daemonize caught the signals.
// (An epoll descriptor is no sign of it: a package's init may read a file
// first.)
func namedWorker(pid int) bool {
	return strings.Contains(procComm(pid), ": w")
}

// TestSignalsAtStart sends signals at the moments a process has just become
// visible: SIGHUP to a master as soon as its pid file appears (systemd's
// reload, a logrotate script), SIGQUIT to a worker as soon as it runs gozd's
// code (systemd's stop of the whole cgroup). Neither may kill the process by
// the signal's default action, or dump its stacks.
func TestSignalsAtStart(t *testing.T) {
	bin := buildTestDaemon(t, "v1", "")

	t.Run("SIGHUP when the pid file appears", func(t *testing.T) {
		for i := range 10 {
			dir := newDaemonDir(t)
			conf := writeFile(t, dir, "gozd.conf", fmt.Sprintf("pidfile %s/gozd.pid\n[web]\nmode http\nlisten 127.0.0.1:0\n", dir))
			var pid atomic.Int64
			stop := onCreate(t, dir, "gozd.pid", func() {
				for pid.Load() == 0 {
					time.Sleep(10 * time.Microsecond)
				}
				syscall.Kill(int(pid.Load()), syscall.SIGHUP)
			})
			p := startProcess(t, bin, "-f", "-c", conf)
			pid.Store(int64(p.pid()))
			waitUntil(t, "the start line or the master's exit", func() bool {
				_, started := p.out.line("gozd: started")
				select {
				case <-p.done:
					return true
				default:
				}
				return started
			})
			stop()
			select {
			case <-p.done:
				t.Fatalf("start %d: the master (pid %d) died of the SIGHUP sent as its pid file appeared: %v\n%s", i, p.pid(), p.err, p.out.String())
			default:
			}
			// The HUP is a reload, as at any other time.
			waitUntil(t, "the reload the SIGHUP asked for", func() bool { return strings.Count(p.out.String(), `msg="worker ready"`) == 2 })
			p.signal(syscall.SIGQUIT)
			if code := p.wait(); code != 0 {
				t.Fatalf("start %d: quit: exit %d\n%s", i, code, p.out.String())
			}
		}
	})

	t.Run("SIGINT to the launcher of a background start", func(t *testing.T) {
		// Not a daemon: Ctrl-C ends it as it ends any command, while
		// the daemon it started carries on.
		dir := newDaemonDir(t)
		conf := writeFile(t, dir, "gozd.conf", fmt.Sprintf("pidfile %[1]s/gozd.pid\nlogfile %[1]s/gozd.log\n[web]\nmode http\nlisten 127.0.0.1:0\n", dir))
		launcher := startProcess(t, buildTestDaemon(t, "v1", "slow"), "-c", conf)
		var master int
		waitUntil(t, "the background master's pid file", func() bool {
			b, err := os.ReadFile(filepath.Join(dir, "gozd.pid"))
			master, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			return err == nil && master > 0
		})
		opsKillOnCleanup(t, master)
		launcher.signal(syscall.SIGINT)
		launcher.wait()
		if ws := launcher.cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGINT {
			t.Errorf("launcher: %v; want killed by SIGINT", launcher.cmd.ProcessState)
		}
		if !processAlive(master) {
			t.Errorf("the daemon (pid %d) died with its launcher", master)
		}
	})

	t.Run("SIGQUIT to a starting worker", func(t *testing.T) {
		d := startMaster(t, newDaemonDir(t), "[web]\nmode http\nlisten 127.0.0.1:0\n")
		known := []int{d.worker()}
		for i := range 10 {
			d.proc.signal(syscall.SIGHUP)
			var w int
			deadline := time.Now().Add(waitTimeout)
			for w == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("reload %d: no new worker within %s", i, waitTimeout)
				}
				for _, c := range childPids(d.pid) {
					if !slices.Contains(known, c) {
						w = c
					}
				}
			}
			known = append(known, w)
			for !namedWorker(w) && processAlive(w) {
				if time.Now().After(deadline) {
					t.Fatalf("reload %d: worker %d did not start within %s", i, w, waitTimeout)
				}
			}
			syscall.Kill(w, syscall.SIGQUIT)
			waitUntil(t, fmt.Sprintf("worker %d gone", w), func() bool { return !slices.Contains(childPids(d.pid), w) })
			// Back to one serving worker before the next round.
			d.worker()
		}
		if out := d.proc.out.String(); strings.Contains(out, "SIGQUIT: quit") || strings.Contains(out, "exit status 2") {
			t.Fatalf("a worker dumped its stacks on SIGQUIT:\n%s", out)
		}
	})
}

// pausableReader copies a pipe into a buffer until paused: a log reader
// that stops reading, as a stuck journald or a full terminal does.
type pausableReader struct {
	gate sync.Mutex // held by the reader while it reads, by the test while paused
	out  syncBuffer
}

func (r *pausableReader) run(f *os.File) {
	buf := make([]byte, 4096)
	for {
		r.gate.Lock()
		n, err := f.Read(buf)
		r.gate.Unlock()
		r.out.Write(buf[:n])
		if err != nil {
			return
		}
	}
}

// waitBlockedWriting waits until a thread of pid is blocked in a write to
// its stdout or stderr: the log pipe is full.
func waitBlockedWriting(t *testing.T, pid int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("pid %d blocked writing its log", pid), func() bool {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
		for _, task := range tasks {
			b, _ := os.ReadFile(task)
			// "NR ARG0 ...": the syscall a blocked thread is in.
			f := strings.Fields(string(b))
			if len(f) > 1 && f[0] == strconv.Itoa(unix.SYS_WRITE) && (f[1] == "0x1" || f[1] == "0x2") {
				return true
			}
		}
		return false
	})
}

// bytesWritten is how many bytes pid has written (wchar of /proc/PID/io).
func bytesWritten(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// TestMasterStalledLog gives a foreground master a stderr that the reader
// stops reading, while its worker logs without pause: reloads and a quit
// must still go through, and once the reader reads again the log says how
// many lines it lost.
func TestMasterStalledLog(t *testing.T) {
	dir := newDaemonDir(t)
	conf := testProgramConf(t, dir)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd := testProgramCmd(t, []string{"-f", "-c", conf}, envTestChatty+"=1")
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	opsKillOnCleanup(t, cmd.Process.Pid)
	r := &pausableReader{}
	go r.run(pr)
	paused := false
	pause := func() { r.gate.Lock(); paused = true }
	resume := func() { paused = false; r.gate.Unlock() }
	t.Cleanup(func() {
		if paused {
			resume()
		}
		if t.Failed() {
			out := r.out.String()
			t.Logf("master's output (%d bytes), without the chatter:\n%s", len(out), regexp.MustCompile(`(?m)^chatter.*\n`).ReplaceAllString(out, ""))
		}
	})

	var line string
	waitUntil(t, "the start line", func() bool {
		var ok bool
		line, ok = r.out.line("gozd: started")
		return ok
	})
	_, addrs := startedAddrs(t, line)
	w1, err := servedBy(addrs["web"], "/")
	if err != nil {
		t.Fatal(err)
	}

	pause()
	waitBlockedWriting(t, cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGHUP)
	w2 := waitServedByOther(t, addrs["web"], w1)
	waitUntil(t, fmt.Sprintf("old worker %d drained and reaped", w1), func() bool { return !processAlive(w1) })
	// Stay stalled until the new worker alone has written more than the
	// master can hold (its buffer, and the batch stuck in the write).
	waitUntil(t, fmt.Sprintf("worker %d to write 3 MiB", w2), func() bool { return bytesWritten(w2) > 3<<20 })

	resume()
	waitUntil(t, "the count of dropped lines in the log", func() bool {
		_, ok := r.out.line("log lines were dropped")
		return ok
	})
	report, _ := r.out.line("log lines were dropped")
	t.Logf("after the stall: %s", report)
	if m := regexp.MustCompile(` lines=(\d+) `).FindStringSubmatch(report); m == nil || m[1] == "0" {
		t.Errorf("report of dropped lines %q: want lines=N, N > 0", report)
	}

	pause()
	waitBlockedWriting(t, cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-exited:
	case <-time.After(waitTimeout):
		t.Fatalf("master did not quit within %s while its log was stalled", waitTimeout)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("quit: exit %d", code)
	}
	if processAlive(w2) {
		t.Errorf("worker %d outlived its master's quit", w2)
	}
}

// TestMasterSlowReloadConfig holds a reload while it reads its config, as a
// hung LDAP behind a user lookup would: meanwhile the master must still reap
// a worker that dies and start another, coalesce the HUPs that pile up, and
// quit when told.
func TestMasterSlowReloadConfig(t *testing.T) {
	dir := newDaemonDir(t)
	conf := testProgramConf(t, dir)
	hold := filepath.Join(dir, "hold")
	p := opsStartCmd(t, testProgramCmd(t, []string{"-f", "-c", conf}, envTestHold+"="+hold))
	_, addrs := startedAddrs(t, p.waitOutput("gozd: started"))
	addr := addrs["web"]
	w1, err := servedBy(addr, "/")
	if err != nil {
		t.Fatal(err)
	}
	holdReload := func() {
		t.Helper()
		os.Remove(hold + ".entered")
		writeFile(t, dir, "hold", "")
		p.signal(syscall.SIGHUP)
		waitUntil(t, "the reload to be reading its config", func() bool { return opsExists(hold + ".entered") })
	}

	holdReload()
	syscall.Kill(w1, syscall.SIGKILL)
	waitUntil(t, fmt.Sprintf("killed worker %d reaped", w1), func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", w1))
		return os.IsNotExist(err)
	})
	w2 := waitServedByOther(t, addr, w1)
	for range 3 {
		p.signal(syscall.SIGHUP)
	}
	p.waitOutput("reload queued behind the one under way")
	os.Remove(hold)
	// The held reload, then one for the HUPs that came while it was held.
	waitUntil(t, "two reloads after the held one ends", func() bool { return strings.Count(p.out.String(), `msg="worker ready"`) == 4 })
	w4 := waitServedByOther(t, addr, w2)
	b, err := os.ReadFile(filepath.Join(dir, "gozd.pid.state"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"gen":4,`) || !strings.Contains(string(b), fmt.Sprintf(`"worker":%d,`, w4)) {
		t.Errorf("state %s: want generation 4 (first start, restart, held reload, one coalesced reload), worker %d", b, w4)
	}

	holdReload()
	p.signal(syscall.SIGQUIT)
	if code := p.wait(); code != 0 {
		t.Errorf("quit during a held reload: exit %d", code)
	}
}

// TestMasterKilled kills the master alone (kill -9). Its workers see the
// control socket close, finish what they serve and exit; every port and
// socket is then free, and the same config starts again at once.
func TestMasterKilled(t *testing.T) {
	dir := newDaemonDir(t)
	web := freePort(t)
	conf := fmt.Sprintf("drain_timeout 20s\n[web]\nmode http\nlisten %s\n[fcgi]\nmode fcgi\nlisten %%DIR%%/app.sock\n", web)
	d := startMaster(t, dir, conf)
	w := d.worker()
	t.Cleanup(func() {
		if processAlive(w) {
			syscall.Kill(w, syscall.SIGKILL)
		}
	})
	sock := filepath.Join(dir, "app.sock")

	// A request in flight: the worker has accepted it (a socket it did not
	// have) and sleeps before answering. Not a count of descriptors: one
	// the worker closed meanwhile would hide the accept (a CI run under
	// -race waited out its minute so).
	before := sockets(w)
	type answer struct {
		pid int
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		pid, err := servedBy(web, "/sleep?d=2s")
		answered <- answer{pid, err}
	}()
	waitUntil(t, "the worker to accept the request", func() bool {
		for s := range sockets(w) {
			if !before[s] {
				return true
			}
		}
		return false
	})

	if err := syscall.Kill(d.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.proc.wait()
	select {
	case a := <-answered:
		if a.err != nil || a.pid != w {
			t.Errorf("in-flight request: pid %d, %v; want an answer from worker %d", a.pid, a.err, w)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("in-flight request not answered within %s of the master's death", waitTimeout)
	}
	waitUntil(t, fmt.Sprintf("worker %d to exit", w), func() bool { return !processAlive(w) })

	// Nothing listens any more: the port binds, the socket refuses.
	ln, err := net.Listen("tcp", web)
	if err != nil {
		t.Errorf("port %s still taken after the workers left: %v", web, err)
	} else {
		ln.Close()
	}
	if c, err := net.Dial("unix", sock); err == nil {
		c.Close()
		t.Errorf("%s still accepts after the workers left", sock)
	}

	// A new start, on the first try: the stale socket file is no obstacle.
	d2 := startMaster(t, dir, conf)
	if pid, err := servedBy(web, "/"); err != nil || pid != d2.worker() {
		t.Errorf("after restart: GET / from pid %d, %v; want worker %d", pid, err, d2.worker())
	}
	if c, err := net.Dial("unix", sock); err != nil {
		t.Errorf("after restart: %s: %v", sock, err)
	} else {
		c.Close()
	}
}

// TestMasterDeathDeployFiles keeps the shipped deployments restarting a
// master that died: systemd restarts the service, and lets its workers
// drain first (KillMode=mixed would SIGKILL them as soon as the master is
// gone); the container's instructions give it a restart policy.
func TestMasterDeathDeployFiles(t *testing.T) {
	services, _ := filepath.Glob("examples/systemd/*.service")
	if len(services) == 0 {
		t.Fatal("no service units")
	}
	for _, s := range services {
		if got := opsUnitValues(t, s, "Restart"); len(got) != 1 || got[0] != "on-failure" {
			t.Errorf("%s: Restart=%q, want on-failure", s, got)
		}
		if got := opsUnitValues(t, s, "KillMode"); len(got) > 1 || len(got) == 1 && got[0] != "control-group" {
			t.Errorf("%s: KillMode=%q, want control-group", s, got)
		}
	}
	for _, f := range []string{"examples/container/Dockerfile", "examples/container/README.md"} {
		if !strings.Contains(opsReadFile(t, f), "--restart on-failure") {
			t.Errorf("%s: the docker run line has no --restart on-failure", f)
		}
	}
}

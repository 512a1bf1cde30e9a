package gozd_test

// Helpers shared by the tests that drive real gozd programs: build them,
// start them, wait for them, stop them by pid.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gozd/gozd/internal/testcert"
)

// waitTimeout bounds every wait of the process tests. It is generous: the
// tests must not fail because a loaded machine is slow, only never hang.
const waitTimeout = 60 * time.Second

var builds struct {
	mu   sync.Mutex
	dir  string
	done map[string]string
}

// buildBinary builds the main package pkg (e.g. "./examples/mixed") with
// main.version set to version, once per test run, and returns its path.
func buildBinary(t testing.TB, pkg, version string) string {
	t.Helper()
	builds.mu.Lock()
	defer builds.mu.Unlock()
	key := pkg + "@" + version
	if p, ok := builds.done[key]; ok {
		return p
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "gozd-test-bin-")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir = dir
		builds.done = make(map[string]string)
	}
	out := filepath.Join(builds.dir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg)+"-"+version)
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", "-X main.version="+version, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	builds.done[key] = out
	return out
}

// installBinary copies the built binary src to dst the way a deploy does:
// write a temporary file beside dst, then rename it over dst.
func installBinary(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	os.Exit(code)
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// process is a gozd program started by a test, with its output captured.
type process struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// startProcess starts bin with args; the test's cleanup kills it (by pid) if
// it is still running.
func startProcess(t testing.TB, bin string, args ...string) *process {
	t.Helper()
	p := &process{t: t, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", bin, p.out.String())
		}
	})
	return p
}

// pid is the process's pid.
func (p *process) pid() int { return p.cmd.Process.Pid }

// signal sends sig to the process.
func (p *process) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to pid %d: %v", sig, p.pid(), err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *process) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		p.t.Fatalf("pid %d still running after %s", p.pid(), waitTimeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// waitOutput waits until the output contains s, and returns the line that
// holds it.
func (p *process) waitOutput(s string) string {
	p.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if line, ok := p.out.line(s); ok {
			return line
		}
		select {
		case <-p.done:
			if line, ok := p.out.line(s); ok {
				return line
			}
			p.t.Fatalf("pid %d exited (%v) before printing %q", p.pid(), p.err, s)
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.t.Fatalf("pid %d did not print %q within %s", p.pid(), s, waitTimeout)
	return ""
}

// startedAddrs parses the line a gozd master prints once it serves
// ("gozd: started, pid N; NAME MODE on ADDR; ...") into group → address.
func startedAddrs(t testing.TB, line string) (pid int, addrs map[string]string) {
	t.Helper()
	addrs = make(map[string]string)
	// A background start prints a second line (log and pid file paths).
	if i := strings.Index(line, "gozd: started"); i >= 0 {
		line = line[i:]
	}
	line, _, _ = strings.Cut(line, "\n")
	parts := strings.Split(line, "; ")
	if _, err := fmt.Sscanf(parts[0][strings.Index(parts[0], "gozd: started"):], "gozd: started, pid %d", &pid); err != nil {
		t.Fatalf("bad start line %q: %v", line, err)
	}
	for _, p := range parts[1:] {
		f := strings.Fields(p)
		if len(f) != 4 || f[2] != "on" {
			t.Fatalf("bad start line %q", line)
		}
		addrs[f[0]] = f[3]
	}
	return pid, addrs
}

// waitUntil polls cond until it holds or waitTimeout passes.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processAlive reports whether pid exists (and is not a zombie).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// childPids returns the pids of the children of pid. A Go program forks
// from whichever thread runs the goroutine, and the kernel lists each child
// under that thread only, so every thread's list is read.
func childPids(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var pids []int
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			var c int
			fmt.Sscan(f, &c)
			pids = append(pids, c)
		}
	}
	return pids
}

// freePort returns a tcp address on 127.0.0.1 that was free a moment ago,
// for configs that must name a fixed port across a restart.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeKeyPair writes a fresh self-signed ECDSA pair for localhost,
// 127.0.0.1 and ::1 into dir and returns the key and cert paths.
func writeKeyPair(t testing.TB, dir string) (keyPath, certPath string) {
	t.Helper()
	pair, err := testcert.New(24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if keyPath, certPath, err = pair.Write(dir, "key.pem", "cert.pem"); err != nil {
		t.Fatal(err)
	}
	return keyPath, certPath
}

// syncBuffer is a bytes.Buffer safe for a process's output and a test
// reading it at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// line returns the first line that contains s.
func (b *syncBuffer) line(s string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return sc.Text(), true
		}
	}
	return "", false
}

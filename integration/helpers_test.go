package integration

// Helpers for the tests that drive real gozd programs of this module: build
// them, start them as a master in the foreground, reload them by pid.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildProgram builds the main package pkg (e.g. "./examples/grpc") into
// the test's temporary directory and returns its path.
func buildProgram(t *testing.T, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// master is a gozd master started in the foreground (-f) by a test.
type master struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startMaster starts bin -f -c conf and waits until it serves; the test's
// cleanup stops it by pid (SIGINT, then SIGKILL).
func startMaster(t *testing.T, bin, conf string) *master {
	t.Helper()
	m := &master{t: t, cmd: exec.Command(bin, "-f", "-c", conf), out: &syncBuffer{}, done: make(chan struct{})}
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			m.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-m.done:
			case <-time.After(wait):
				m.cmd.Process.Kill()
				<-m.done
			}
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", bin, m.out.String())
		}
	})
	m.waitFor("gozd: started", 1)
	return m
}

// addr returns the address of group from the start line ("...; NAME MODE on
// ADDR; ...").
func (m *master) addr(group string) string {
	m.t.Helper()
	for _, line := range strings.Split(m.out.String(), "\n") {
		if !strings.Contains(line, "gozd: started") {
			continue
		}
		for _, part := range strings.Split(line, "; ") {
			if f := strings.Fields(part); len(f) == 4 && f[0] == group && f[2] == "on" {
				return f[3]
			}
		}
	}
	m.t.Fatalf("no address for group %q in:\n%s", group, m.out.String())
	return ""
}

// waitFor waits until the output holds s n times.
func (m *master) waitFor(s string, n int) {
	m.t.Helper()
	deadline := time.Now().Add(2 * wait)
	for strings.Count(m.out.String(), s) < n {
		select {
		case <-m.done:
			m.t.Fatalf("master pid %d exited before printing %q %d times", m.cmd.Process.Pid, s, n)
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("master pid %d did not print %q %d times within %s", m.cmd.Process.Pid, s, n, 2*wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reload sends SIGHUP to the master and waits until the old worker of this,
// the n-th, reload has exited.
func (m *master) reload(n int) {
	m.t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		m.t.Fatalf("SIGHUP to pid %d: %v", m.cmd.Process.Pid, err)
	}
	m.waitFor("old worker exited", n)
}

// writeConf writes a config into a fresh directory and returns its path.
func writeConf(t *testing.T, format string, args ...any) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "gozd.conf")
	body := fmt.Sprintf("pidfile %s/gozd.pid\n", dir) + fmt.Sprintf(format, args...)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

package gozd_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gozd/gozd"
	"golang.org/x/sys/unix"
)

// threadNices returns the nice value of every thread of pid, read from
// /proc/PID/task/TID/stat (field 19, counted after the parenthesised name,
// which may hold spaces).
func threadNices(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var nices []int
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the thread is gone
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		n, err := strconv.Atoi(fields[16]) // field 19 of the whole line
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		nices = append(nices, n)
	}
	return nices
}

// The master runs start_boost nice levels above the priority it was started
// with, a new worker starts there too, and every one of the worker's threads
// is back at the master's original priority once it is ready. The slow build takes two seconds
// to register its handlers: the time to look at it while it starts.
func TestStartBoost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raising a priority needs root")
	}
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	base := 20 - p // the system call's way of keeping it positive
	if base-gozd.DefaultStartBoost < -20 {
		t.Skipf("the test runs at nice %d: no room for the boost", base)
	}
	boosted := base - gozd.DefaultStartBoost
	d := startMaster(t, newDaemonDir(t), `
[web]
mode   http
listen 127.0.0.1:0
`)
	first := d.worker()
	if n := threadNices(t, d.pid); slices.ContainsFunc(n, func(v int) bool { return v != boosted }) {
		t.Errorf("master's threads at nice %v; want all at %d", n, boosted)
	}
	if n := threadNices(t, first); slices.ContainsFunc(n, func(v int) bool { return v != base }) {
		t.Errorf("ready worker's threads at nice %v; want all at %d", n, base)
	}

	installBinary(t, buildTestDaemon(t, "v2", "slow"), d.bin)
	d.proc.signal(syscall.SIGHUP)
	d.waitLog(`msg="worker started"`, 2)
	var starting int
	waitUntil(t, "the new worker", func() bool {
		for _, pid := range childPids(d.pid) {
			if pid != first {
				starting = pid
			}
		}
		return starting != 0
	})
	if n := threadNices(t, starting); !slices.Contains(n, boosted) || slices.ContainsFunc(n, func(v int) bool { return v != boosted }) {
		t.Errorf("starting worker's threads at nice %v; want all at %d", n, boosted)
	}
	d.waitLog(`msg="worker ready"`, 2)
	waitUntil(t, "the new worker's threads back at the master's priority", func() bool {
		return !slices.ContainsFunc(threadNices(t, starting), func(v int) bool { return v != base })
	})

	// start_boost 0, applied by a reload: the next worker starts at the
	// master's priority.
	d.writeConfig("start_boost 0\n[web]\nmode   http\nlisten 127.0.0.1:0\n")
	installBinary(t, buildTestDaemon(t, "v1", "slow"), d.bin)
	d.proc.signal(syscall.SIGHUP)
	d.waitLog(`msg="worker started"`, 3)
	var third int
	waitUntil(t, "the third worker", func() bool {
		for _, pid := range childPids(d.pid) {
			if pid != starting {
				third = pid
			}
		}
		return third != 0
	})
	if n := threadNices(t, third); slices.ContainsFunc(n, func(v int) bool { return v != base }) {
		t.Errorf("with start_boost 0, the starting worker's threads are at nice %v; want all at %d", n, base)
	}
	if n := threadNices(t, d.pid); slices.ContainsFunc(n, func(v int) bool { return v != base }) {
		t.Errorf("with start_boost 0, master's threads at nice %v; want all at %d", n, base)
	}
	d.waitLog(`msg="worker ready"`, 3)
}

func TestStartBoostConfig(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"start_boost 40\n[a]\nmode http\nlisten :0\n", "a.conf:1: bad start_boost"},
		{"start_boost -1\n[a]\nmode http\nlisten :0\n", "a.conf:1: bad start_boost"},
		{"[a]\nmode http\nlisten :0\nstart_boost 5\n", `a.conf:4: directive "start_boost" is global`},
	} {
		_, err := gozd.ParseConfig("a.conf", strings.NewReader(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want %q", tc.text, err, tc.want)
		}
	}
	cfg, err := gozd.ParseConfig("a.conf", strings.NewReader("[a]\nmode http\nlisten :0\n"))
	if err != nil || cfg.StartBoost != gozd.DefaultStartBoost {
		t.Fatalf("default start_boost: %v, %v; want %d", cfg, err, gozd.DefaultStartBoost)
	}
	cfg, err = gozd.ParseConfig("a.conf", strings.NewReader("start_boost 0\n[a]\nmode http\nlisten :0\n"))
	if err != nil || cfg.StartBoost != 0 {
		t.Fatalf("start_boost 0: %v, %v", cfg, err)
	}
}

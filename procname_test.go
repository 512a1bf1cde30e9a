package gozd_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// procComm is the kernel's name of process pid.
func procComm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// TestProcNames: ps tells the master, the serving worker and a draining one
// apart by their names, cut at 15 bytes as the kernel does.
func TestProcNames(t *testing.T) {
	dir := newDaemonDir(t)
	bin := filepath.Join(dir, "app")
	installBinary(t, buildTestDaemon(t, "v1", ""), bin)
	conf := writeFile(t, dir, "app.conf", fmt.Sprintf(`pidfile %s/app.pid
drain_timeout 10m
[echo]
mode   tcp
listen 127.0.0.1:0
`, dir))
	p := startProcess(t, bin, "-f", "-c", conf)
	master, addrs := startedAddrs(t, p.waitOutput("gozd: started"))
	if got := procComm(master); got != "app: master" {
		t.Errorf("master's name %q, want %q", got, "app: master")
	}
	var old int
	waitUntil(t, "one worker", func() bool {
		kids := childPids(master)
		if len(kids) == 1 {
			old = kids[0]
		}
		return len(kids) == 1
	})
	waitUntil(t, "the worker named", func() bool { return procComm(old) == "app: worker 1" })

	holdEcho(t, addrs["echo"])
	p.signal(syscall.SIGHUP)
	// "app: worker 1 draining", cut at 15 bytes.
	waitUntil(t, "the old worker named draining", func() bool { return procComm(old) == "app: worker 1 d" })
	waitUntil(t, "the new worker named", func() bool {
		for _, pid := range childPids(master) {
			if pid != old && procComm(pid) == "app: worker 2" {
				return true
			}
		}
		return false
	})
}

package gozd_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rssFileKB reads RssFile from /proc/PID/status.
func rssFileKB(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no RssFile in /proc/%d/status", pid)
	return 0
}

// Once the first worker is ready, the master drops the pages of its binary
// and libraries that its start touched, and it keeps working: a reload runs
// code whose pages come back from the page cache. The binary is a PIE, whose
// RELRO segment the dynamic linker wrote before making it read-only: were
// those pages dropped, the master would read unrelocated pointers and crash
// at the next reload.
func TestMasterDropsStartPages(t *testing.T) {
	dir := newDaemonDir(t)
	pie := filepath.Join(t.TempDir(), "testdaemon-pie")
	build := exec.Command("go", "build", "-buildmode=pie", "-o", pie, "-ldflags", "-X main.version=v2", testDaemonPkg)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildmode=pie: %v\n%s", err, out)
	}
	d := &masterProcess{t: t, dir: dir, bin: filepath.Join(dir, "testdaemon")}
	installBinary(t, pie, d.bin)
	d.conf = d.writeConfig("[web]\nmode   http\nlisten 127.0.0.1:0\n")
	d.proc = startProcess(t, d.bin, "-f", "-c", d.conf)
	d.pid, d.addrs = startedAddrs(t, d.proc.waitOutput("gozd: started"))
	started := rssFileKB(t, d.pid)
	waitUntil(t, "the master's file pages dropped", func() bool { return rssFileKB(t, d.pid) < started/2 })

	url := "http://" + d.addrs["web"] + "/"
	for i, v := range []string{"v1", "v2", "v1"} {
		old := d.worker()
		installBinary(t, buildTestDaemon(t, v, ""), d.bin)
		d.proc.signal(syscall.SIGHUP)
		d.waitLog(`msg="old worker exited"`, i+1)
		if got, pid, err := httpVersion(newConnClient, url); err != nil || got != v || pid == old {
			t.Fatalf("reload %d: %s from pid %d, %v; want %s from a new worker", i+1, got, pid, err, v)
		}
	}
	if !processAlive(d.pid) {
		t.Fatal("the master died")
	}
}

// What the master touches to answer its workers (a metrics scrape, reports,
// the state file) is dropped again once it has been quiet for a while, not
// only after a reload: a scrape, however rare, does not leave its pages
// mapped for good.
func TestMasterDropsPagesAfterScrape(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
[web]
mode    http
listen  127.0.0.1:0
metrics /metrics
`)
	started := rssFileKB(t, d.pid)
	waitUntil(t, "the master's file pages dropped after the start", func() bool { return rssFileKB(t, d.pid) < started*3/4 })
	quiet := rssFileKB(t, d.pid)
	// The scrape's answer comes from the master: by the time it arrives,
	// the master has run the code that renders its metrics.
	scrape(t, "http://"+d.addrs["web"]+"/metrics")
	busy := rssFileKB(t, d.pid)
	if busy <= quiet {
		t.Fatalf("RssFile %d kB after a scrape, %d kB before: the scrape touched none of the master's code", busy, quiet)
	}
	waitUntil(t, "the master's file pages dropped after the scrape", func() bool { return rssFileKB(t, d.pid) < quiet+(busy-quiet)/2 })
}

// Steady traffic keeps the worker's reports coming every quarter second, and
// each report asks for a trim once things are quiet: that must not put off
// the trim after the start, whose pages nothing touches again.
func TestMasterDropsStartPagesUnderTraffic(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
[web]
mode    http
listen  127.0.0.1:0
`)
	started := rssFileKB(t, d.pid)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		// A new connection each time: every report has a new count.
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				freshGet("http://" + d.addrs["web"] + "/")
			}
		}
	}()
	defer func() { close(stop); <-done }()
	waitUntil(t, "the master's file pages dropped while traffic goes on", func() bool { return rssFileKB(t, d.pid) < started*3/4 })
}

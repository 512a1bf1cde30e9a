package gozd_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
)

// statusJSON is the part of "-s status -json" the tests read.
type statusJSON struct {
	Running bool    `json:"running"`
	Pid     int     `json:"pid"`
	Config  string  `json:"config"`
	Exe     string  `json:"exe"`
	Uptime  float64 `json:"uptime_seconds"`
	Worker  int     `json:"worker"`
	Workers []struct {
		Pid         int    `json:"pid"`
		Gen         int    `json:"gen"`
		State       string `json:"state"`
		Connections int    `json:"connections"`
		Build       *struct {
			Path string `json:"path"`
			Go   string `json:"go"`
		} `json:"build"`
		Groups []struct {
			Name     string `json:"name"`
			Active   int    `json:"active"`
			Idle     int    `json:"idle"`
			Accepted int    `json:"accepted"`
		} `json:"groups"`
	} `json:"workers"`
	Groups []struct {
		Name        string `json:"name"`
		Mode        string `json:"mode"`
		Addr        string `json:"addr"`
		Connections int    `json:"connections"`
	} `json:"groups"`
	Last *struct {
		OK        bool   `json:"ok"`
		NewWorker int    `json:"new_worker"`
		Exe       string `json:"exe"`
	} `json:"last"`
}

// status runs -s status -json and decodes it.
func (d *masterProcess) status() statusJSON {
	d.t.Helper()
	r := opsRun(d.t, d.bin, "-s", "status", "-json", "-c", d.conf)
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil {
		d.t.Fatalf("-s status -json: %v (%v)", r, err)
	}
	return st
}

// waitStatus polls -s status -json until cond holds.
func (d *masterProcess) waitStatus(what string, cond func(statusJSON) bool) statusJSON {
	d.t.Helper()
	var st statusJSON
	waitUntil(d.t, what+" in -s status", func() bool {
		st = d.status()
		return cond(st)
	})
	return st
}

// TestStatusCommand: -s status tells an operator which master, worker,
// build and groups serve, how many connections each holds, which old
// worker still drains and with how many, and how the last reload went; it
// exits 3 once the daemon is gone.
func TestStatusCommand(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
drain_timeout 10m
[echo]
mode   tcp
listen 127.0.0.1:0
[web]
mode   http
listen 127.0.0.1:0
`)
	old := d.worker()
	out, code := d.control("status")
	for _, want := range []string{
		fmt.Sprintf("gozd: running, master pid %d, up ", d.pid),
		"config   " + d.conf,
		"binary   " + d.bin,
		fmt.Sprintf("worker   pid %d, generation 1, serving since ", old),
		"build github.com/gozd/gozd/internal/testdaemon",
		"group    echo tcp on " + d.addrs["echo"],
		"group    web http on " + d.addrs["web"],
		"no reload yet",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("-s status: exit %d, want %q in:\n%s", code, want, out)
		}
	}

	c := holdEcho(t, d.addrs["echo"])
	st := d.waitStatus("one echo connection", func(st statusJSON) bool {
		return len(st.Groups) == 2 && st.Groups[0].Connections == 1
	})
	if !st.Running || st.Pid != d.pid || st.Worker != old || st.Exe != d.bin || st.Config != d.conf || st.Uptime <= 0 {
		t.Errorf("-s status -json: %+v", st)
	}
	if len(st.Workers) != 1 || st.Workers[0].Build == nil || !strings.HasPrefix(st.Workers[0].Build.Go, "go") {
		t.Errorf("-s status -json: workers %+v", st.Workers)
	}

	// The echo handler ignores the drain: the old worker holds the
	// connection after a reload.
	nw := d.reload(buildTestDaemon(t, "v2", ""), false, old)
	st = d.waitStatus("the old worker draining with one connection", func(st statusJSON) bool {
		return len(st.Workers) == 2 && st.Workers[1].State == "draining" && st.Workers[1].Connections == 1
	})
	if st.Worker != nw || st.Workers[0].Pid != nw || st.Workers[0].State != "serving" || st.Workers[0].Gen != 2 || st.Workers[1].Pid != old {
		t.Errorf("after the reload: %+v", st.Workers)
	}
	if st.Last == nil || !st.Last.OK || st.Last.NewWorker != nw || st.Last.Exe != d.bin {
		t.Errorf("last reload: %+v", st.Last)
	}
	out, _ = d.control("status")
	for _, want := range []string{
		fmt.Sprintf("worker   pid %d, generation 2, serving since ", nw),
		fmt.Sprintf("worker   pid %d, generation 1, draining for ", old),
		"1 connections left",
		"last reload ok at ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-s status after a reload: want %q in:\n%s", want, out)
		}
	}
	c.Close()

	if out, code := d.control("stop"); code != 0 {
		t.Fatalf("-s stop: exit %d: %s", code, out)
	}
	out, code = d.control("status")
	if code != 3 || !strings.Contains(out, "not running") {
		t.Errorf("-s status of a stopped daemon: exit %d, %q; want 3, not running", code, out)
	}
	r := opsRun(t, d.bin, "-s", "status", "-json", "-c", d.conf)
	if r.code != 3 || strings.TrimSpace(r.stdout) != fmt.Sprintf(`{"running":false,"pidfile":"%s/gozd.pid"}`, d.dir) {
		t.Errorf("-s status -json of a stopped daemon: %v", r)
	}
}

// holdEcho opens a connection to the echo group at addr and exchanges a
// line on it, so that the worker holds it; the test's end closes it.
func holdEcho(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := echoLine(c, bufio.NewReader(c), "hold"); err != nil {
		t.Fatal(err)
	}
	return c
}

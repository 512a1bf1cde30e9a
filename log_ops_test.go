package gozd_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// TestWorkerLogger: the program's log.Printf and gozd.Logger lines carry
// the worker's role, pid and generation; log_format and log_level, changed
// by a reload, apply to the master's lines and the new worker's.
func TestWorkerLogger(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
[web]
mode   http
listen 127.0.0.1:0
`)
	w := d.worker()
	base := "http://" + d.addrs["web"]
	if code, _, err := freshGet(base + "/log?m=first"); err != nil || code != 200 {
		t.Fatalf("GET /log: %d %v", code, err)
	}
	for _, want := range []string{
		fmt.Sprintf(`level=INFO msg="testdaemon: first" pid=%d role=worker gen=1`, w),
		fmt.Sprintf(`level=INFO msg="testdaemon slog" pid=%d role=worker gen=1 m=first`, w),
	} {
		d.waitLog(want, 1)
	}

	d.writeConfig(`
log_format json
log_level  debug
[web]
mode   http
listen 127.0.0.1:0
`)
	nw := d.reload(buildTestDaemon(t, "v2", ""), false, w)
	if code, _, err := freshGet(base + "/log?m=second"); err != nil || code != 200 {
		t.Fatalf("GET /log: %d %v", code, err)
	}
	type line struct {
		Level string `json:"level"`
		Msg   string `json:"msg"`
		Pid   int    `json:"pid"`
		Role  string `json:"role"`
		Gen   int    `json:"gen"`
	}
	want := map[line]bool{
		{Level: "INFO", Msg: "testdaemon: second", Pid: nw, Role: "worker", Gen: 2}: false,
		{Level: "DEBUG", Msg: "ready", Pid: nw, Role: "worker", Gen: 2}:             false, // log_level debug
		{Level: "INFO", Msg: "worker draining", Pid: d.pid, Role: "master", Gen: 1}: false, // the master's, once the new worker serves
	}
	waitUntil(t, "JSON log lines of the reload", func() bool {
		sc := bufio.NewScanner(strings.NewReader(d.proc.out.String()))
		for sc.Scan() {
			var l line
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				if _, ok := want[l]; ok {
					want[l] = true
				}
			}
		}
		for _, seen := range want {
			if !seen {
				return false
			}
		}
		return true
	})
}

// TestDrainCutShortSays: when drain_timeout cuts a drain short, the log
// says which groups and kinds of connections held it.
func TestDrainCutShortSays(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
drain_timeout 1s
[echo]
mode   tcp
listen 127.0.0.1:0
[web]
mode   http
listen 127.0.0.1:0
`)
	holdEcho(t, d.addrs["echo"])
	d.proc.signal(syscall.SIGHUP)
	line := d.proc.waitOutput(`msg="drain cut short; closing the remaining connections"`)
	if !strings.Contains(line, `held_by="echo: 1 tcp"`) {
		t.Errorf("cut-short line does not say what held the drain: %s", line)
	}
}

package gozd_test

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The master's "worker ready" line says where a start's time went: the
// first start from exec to main and from main to ready, a reload also from
// the signal to the fork; and its "worker draining" line how long the old
// worker took to stop accepting once told to drain.
func TestReadyTimeline(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), "[web]\nmode http\nlisten 127.0.0.1:0\n")
	d.waitLog(`msg="worker ready"`, 1)
	installBinary(t, buildTestDaemon(t, "v2", ""), d.bin)
	d.proc.signal(syscall.SIGHUP)
	d.waitLog(`msg="worker ready"`, 2)
	// The old worker's reply to the drain order says how long it took
	// to stop accepting.
	d.waitLog(`msg="worker draining"`, 1)
	if m := regexp.MustCompile(`msg="worker draining" .* after=(\S+)`).FindStringSubmatch(d.proc.out.String()); m == nil {
		t.Errorf("no after= in the worker draining line:\n%s", d.proc.out.String())
	} else if after, err := time.ParseDuration(m[1]); err != nil || after <= 0 {
		t.Errorf("worker draining after=%s, want a duration over 0", m[1])
	}

	step := regexp.MustCompile(` (signal_to_fork|exec_to_main|main_to_ready)=(\S+)`)
	var lines []string
	for _, l := range strings.Split(d.proc.out.String(), "\n") {
		if strings.Contains(l, `msg="worker ready"`) {
			lines = append(lines, l)
		}
	}
	for i, want := range [][]string{{"exec_to_main", "main_to_ready"}, {"signal_to_fork", "exec_to_main", "main_to_ready"}} {
		var got []string
		for _, m := range step.FindAllStringSubmatch(lines[i], -1) {
			if d, err := time.ParseDuration(m[2]); err != nil || d <= 0 {
				t.Errorf("start %d: %s=%s, want a duration over 0", i+1, m[1], m[2])
			}
			got = append(got, m[1])
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("start %d: steps %q in %s; want %q", i+1, got, lines[i], want)
		}
	}
}

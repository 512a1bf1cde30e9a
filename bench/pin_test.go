package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// twoCPUs returns the plan's two sides, or skips.
func twoCPUs(t *testing.T) cpuPlan {
	t.Helper()
	plan := planCPUs()
	if !plan.pinned() {
		t.Skip(plan.note)
	}
	if len(plan.generator) == 0 || len(plan.generator)+len(plan.server) != len(plan.all) {
		t.Fatalf("plan %+v does not split the CPUs", plan)
	}
	return plan
}

// A process started from the pinned thread runs on the server CPUs, every
// thread of it, and so does the process it starts in turn; the bench's
// other threads stay where they were.
func TestOnPinnedThreadChildInherits(t *testing.T) {
	plan := twoCPUs(t)
	set := cpuSetOf(plan.server)
	// sh starts sleep, a grandchild, as gozd's master starts its workers.
	cmd := exec.Command("sh", "-c", "sleep 30 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := onPinnedThread(set, cmd.Start); err != nil {
		t.Fatal(err)
	}
	var grandchild int
	t.Cleanup(func() {
		if grandchild > 0 {
			syscall.Kill(grandchild, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	if on, err := threadsOn(cmd.Process.Pid, set); err != nil || !on {
		t.Fatalf("child pid %d on the server CPUs %v: %v, %v", cmd.Process.Pid, plan.server, on, err)
	}
	// sh prints the grandchild's pid once it has started it; the read
	// ends when sh does, at the latest.
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the grandchild's pid: %v", err)
	}
	if grandchild, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
		t.Fatalf("grandchild pid %q: %v", line, err)
	}
	if on, err := threadsOn(grandchild, set); err != nil || !on {
		t.Fatalf("grandchild pid %d on the server CPUs %v: %v, %v", grandchild, plan.server, on, err)
	}
	if on, err := threadsOn(os.Getpid(), set); err != nil || on {
		t.Fatalf("every thread of the bench on the server CPUs: %v, %v", on, err)
	}
}

// pinThreads pins every thread of a process, those that exist and those
// made afterwards, and puts them back.
func TestPinThreadsSelf(t *testing.T) {
	plan := twoCPUs(t)
	self := os.Getpid()
	all, gen := cpuSetOf(plan.all), cpuSetOf(plan.generator)
	t.Cleanup(func() {
		if _, err := pinThreads(self, all); err != nil {
			t.Error(err)
		}
	})
	// Threads of its own: goroutines locked to theirs, blocked.
	release := make(chan struct{})
	defer close(release)
	for range 4 {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			<-release
		}()
	}
	if _, err := pinThreads(self, gen); err != nil {
		t.Fatal(err)
	}
	if on, err := threadsOn(self, gen); err != nil || !on {
		t.Fatalf("after pinThreads, every thread on %v: %v, %v", plan.generator, on, err)
	}
	if _, err := pinThreads(self, all); err != nil {
		t.Fatal(err)
	}
	if on, err := threadsOn(self, all); err != nil || !on {
		t.Fatalf("after restoring, every thread on %v: %v, %v", plan.all, on, err)
	}
}

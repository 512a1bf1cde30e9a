package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuPlan splits the CPUs the bench may run on between the servers and the
// load generator of the steady state, so that neither takes CPU time from
// the other: a server's throughput then depends on its own cost, not on how
// the scheduler shares cores with the clients.
type cpuPlan struct {
	all               []int // the CPUs the bench was allowed at the start
	server, generator []int // empty when not pinned
	note              string
}

func (c cpuPlan) pinned() bool { return len(c.server) > 0 }

// planCPUs gives the generator the first half of the allowed CPUs (the
// larger half when odd: a load generator that runs out of CPU first hides
// the server's cost) and the servers the rest; on 2 CPUs the generator
// gets CPU 0 and the servers CPU 1. With 1 CPU nothing is pinned.
func planCPUs() cpuPlan {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return cpuPlan{note: fmt.Sprintf("not pinned: reading the bench's CPU affinity: %v", err)}
	}
	var cpus []int
	for i := range len(set) * 64 {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		return cpuPlan{all: cpus, note: fmt.Sprintf("not pinned: the bench may run on CPU %s only, so the server and the load generator share it; their CPU use is shown side by side", cpuList(cpus))}
	}
	g := (len(cpus) + 1) / 2
	return cpuPlan{all: cpus, generator: cpus[:g], server: cpus[g:]}
}

func cpuSetOf(cpus []int) unix.CPUSet {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return set
}

// cpuList writes CPUs as taskset -c does: "1", "0-3", "0,2".
func cpuList(cpus []int) string {
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		} else {
			parts = append(parts, strconv.Itoa(cpus[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// pinThreads sets the CPU affinity of every thread of process pid to set,
// pass after pass until a pass finds none left to change: a thread created
// meanwhile inherits the affinity of the thread that made it, which may not
// have been pinned yet. It returns how many threads it changed.
func pinThreads(pid int, set unix.CPUSet) (changed int, err error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	for range 20 {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return changed, fmt.Errorf("listing the threads of pid %d: %w", pid, err)
		}
		n := 0
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			var cur unix.CPUSet
			if unix.SchedGetaffinity(tid, &cur) == nil && cur == set {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread has exited
				}
				return changed, fmt.Errorf("setting the CPU affinity of thread %d of pid %d: %w", tid, pid, err)
			}
			n++
		}
		if n == 0 {
			return changed, nil
		}
		changed += n
	}
	return changed, fmt.Errorf("pid %d kept making threads faster than they could be pinned", pid)
}

// threadsOn reports whether every thread of pid may run on set's CPUs only.
func threadsOn(pid int, set unix.CPUSet) (bool, error) {
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return false, fmt.Errorf("listing the threads of pid %d: %w", pid, err)
	}
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var cur unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &cur); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			return false, fmt.Errorf("reading the CPU affinity of thread %d of pid %d: %w", tid, pid, err)
		}
		if cur != set {
			return false, nil
		}
	}
	return true, nil
}

// onPinnedThread runs f on an OS thread of its own whose affinity is set,
// so that a process f starts inherits the affinity from its first
// instruction, and so does every process that one forks (gozd's master
// its workers): no thread of theirs ever runs elsewhere. The thread is never
// handed back to the bench's other goroutines: a goroutine that ends while
// locked to its thread takes the thread with it. (Threads the Go runtime
// makes while f runs come from its template thread, not this one.)
func onPinnedThread(set unix.CPUSet, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, on purpose: see above
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- fmt.Errorf("setting the CPU affinity of a thread: %w", err)
			return
		}
		done <- f()
	}()
	return <-done
}

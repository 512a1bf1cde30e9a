package gozd

import (
	"errors"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// DefaultStartBoost is start_boost when the config does not set it.
const DefaultStartBoost = 10

// maxStartBoost spans the whole range of nice values, 19 to -20.
const maxStartBoost = 39

// A reload's critical path is the new worker's start: from its exec until it
// serves every group it needs a few milliseconds of CPU, and on a machine the
// old worker keeps busy it gets them in a fair share with every thread that
// serves, so under load the start stretched to two or three times its idle
// length. The master therefore starts workers from one thread, its loop's,
// run start_boost nice levels above the master's own priority: a worker
// inherits that thread's priority at the fork, and once it is ready it puts
// every one of its threads back to the master's. The master's loop itself, the
// rest of the reload's path, runs boosted too; it does next to nothing between
// reloads. Raising a priority needs root or CAP_SYS_NICE (or RLIMIT_NICE):
// without, workers start at the master's priority, as they did before.

// startPriority is the master's side: the loop's thread and the priority
// workers return to.
type startPriority struct {
	base    int // the master's nice value when it started
	boosted int // the loop thread's nice value now
}

// niceOfThread returns the nice value of thread tid (0: the calling one).
func niceOfThread(tid int) (int, error) {
	// The system call returns 20 - nice, so that no value is negative.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return 0, err
	}
	return 20 - p, nil
}

// lockStartThread locks the calling goroutine, the master's loop, to its
// thread, which every worker is then forked from (with PRIO_PROCESS, Linux
// sets the priority of one thread, and a new process inherits the forking
// thread's), and applies boost to it.
func lockStartThread(boost int) (*startPriority, error) {
	runtime.LockOSThread()
	base, err := niceOfThread(0)
	if err != nil {
		return nil, err
	}
	sp := &startPriority{base: base, boosted: base}
	return sp, sp.apply(boost)
}

// apply sets the loop thread's priority boost nice levels above the base
// (a reload may change start_boost). It must run on the loop's goroutine.
func (sp *startPriority) apply(boost int) error {
	want := max(sp.base-boost, -20)
	if want == sp.boosted {
		return nil
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, want); err != nil {
		return err
	}
	sp.boosted = want
	return nil
}

// workerNice is what a worker started now is told to return to once ready:
// nil when it starts at the master's priority anyway.
func (sp *startPriority) workerNice() *int {
	if sp == nil || sp.boosted == sp.base {
		return nil
	}
	return &sp.base
}

// settlePriority puts every thread of this worker back to nice value base,
// which only lowers priorities and so needs no privilege. Threads the
// runtime starts meanwhile inherit from the thread that starts them, which
// may not have been put back yet: the walk repeats until it changes nothing.
func settlePriority(base int) error {
	for range 10 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			nice, err := niceOfThread(tid)
			if err != nil || nice == base {
				continue // gone meanwhile, or settled
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, base); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return errors.New("threads kept appearing at the start priority")
}

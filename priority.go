package gozd

import (
	"errors"
	"os"
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
// length. The rest of the path is the master's: its loop, the goroutine that
// reads the config, the one that reads the new worker's "ready". So the
// master runs start_boost nice levels above the priority it was started
// with, a worker inherits that at the fork, and once ready a worker puts
// every one of its threads back to the master's original priority. Between
// reloads the master does next to nothing. Raising a priority needs
// CAP_SYS_NICE (or RLIMIT_NICE): without, workers start at the master's
// priority, as they did before.

// startPriority is the master's priority: the one it started with, which
// workers return to, and the one it runs at.
type startPriority struct {
	base    int // the master's nice value when it started
	boosted int // its threads' nice value now
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

// boostMaster reads the master's priority and raises it by boost.
func boostMaster(boost int) (*startPriority, error) {
	base, err := niceOfThread(0)
	if err != nil {
		return nil, err
	}
	sp := &startPriority{base: base, boosted: base}
	return sp, sp.apply(boost)
}

// apply sets the master's priority boost nice levels above its base (a
// reload may change start_boost).
func (sp *startPriority) apply(boost int) error {
	want := max(sp.base-boost, -20)
	if want == sp.boosted {
		return nil
	}
	if err := setThreadsNice(want); err != nil {
		// Threads set before the refusal go back (lowering a
		// priority needs no privilege): a worker forked from one
		// would otherwise keep the boost, told of no priority to
		// return to.
		setThreadsNice(sp.boosted)
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

// setThreadsNice sets every thread of this process to nice value nice: with
// PRIO_PROCESS, Linux sets one thread's. Threads the runtime starts meanwhile
// inherit from the thread that starts them, which may not have been set yet:
// the walk repeats until it changes nothing.
func setThreadsNice(nice int) error {
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
			if n, err := niceOfThread(tid); err != nil || n == nice {
				continue // gone meanwhile, or set
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return errors.New("threads kept appearing at another priority")
}

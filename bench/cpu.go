package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc CPU times (100 on Linux).
const clockTick = 100

// cpuUse is a reading of the CPU time the whole machine and the bench (with
// every child it waited for: the servers and the go build) have used.
type cpuUse struct {
	machine, ours time.Duration
}

func readCPU() cpuUse {
	var u cpuUse
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		// cpu user nice system idle iowait irq softirq steal: all but idle
		// and iowait is CPU that some process, interrupt (loopback
		// traffic is softirq work) or another VM took.
		for _, i := range []int{1, 2, 3, 6, 7, 8} {
			if i < len(f) {
				n, _ := strconv.ParseInt(f[i], 10, 64)
				u.machine += time.Duration(n) * time.Second / clockTick
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// utime stime cutime cstime are fields 14–17, here 11–14.
		for _, i := range []int{11, 12, 13, 14} {
			if i < len(f) {
				n, _ := strconv.ParseInt(f[i], 10, 64)
				u.ours += time.Duration(n) * time.Second / clockTick
			}
		}
	}
	return u
}

// phaseMark is the start of a phase of the run.
type phaseMark struct {
	name string
	at   time.Time
	cpu  cpuUse
}

// other is the CPU time other processes used from m to next, and its share
// of the machine.
func (m phaseMark) other(next phaseMark) (time.Duration, float64) {
	return otherLoad(m.cpu, next.cpu, next.at.Sub(m.at), runtime.NumCPU())
}

// otherLoad is the share of the machine's CPU that processes other than
// the bench and its servers used between two readings.
func otherLoad(a, b cpuUse, wall time.Duration, cpus int) (used time.Duration, share float64) {
	used = max((b.machine-a.machine)-(b.ours-a.ours), 0)
	return used, float64(used) / float64(wall*time.Duration(cpus))
}

// cpuTime is the CPU time (user + system) the processes pids have used.
func cpuTime(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		for _, i := range []int{11, 12} { // utime, stime
			if i < len(f) {
				n, _ := strconv.ParseInt(f[i], 10, 64)
				sum += time.Duration(n) * time.Second / clockTick
			}
		}
	}
	return sum
}

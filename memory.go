package gozd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The master runs none of the program's code after its start, yet it is the
// program's binary: every package's init ran in it, and its resident memory
// was the program's start-up memory. Two things kept it high, and the second
// made it grow with every reload:
//
//   - Pages of the binary (and of libc) that the start touched stay mapped in
//     the master, some 7 MiB of a typical program's code and tables. They are
//     shared with a worker of the same binary, but after a deploy the master
//     alone holds the old binary's. Dropping them from the master's page
//     tables (MADV_DONTNEED on read-only file mappings) leaves in its resident
//     set only what it touches again: its loop, the runtime, a reload's path.
//     A page it needs comes back from the page cache with a minor fault.
//   - The Go heap collects nothing below its minimum of 4 MiB, and each reload
//     leaves garbage (configs, buffers, reports): the heap filled up to 4 MiB
//     before the first collection. The master collects and returns free
//     memory to the system once things are quiet.
//
// The trim runs off the loop a second after the first worker is ready and
// after each old worker exits, whatever else the master does meanwhile; and
// once things are quiet after a burst of workers' reports, state file writes
// and scrapes (which touch the code for JSON, metrics and files again).
// While traffic keeps the reports coming, that second trim waits, rather
// than dropping pages that the next report faults back in.
//
// Under steady traffic the reports come irregularly: a worker sends one only
// when its counts changed, so a second without one is common, and a trim
// after it was undone by the next report a moment later. Each such round
// cost the master some milliseconds of CPU (reading smaps, a forced
// collection, then the faults), on a CPU it may share with the worker. So
// the quiet a trim after work waits for doubles, up to maxWorkQuiet, each
// time work comes back sooner than that after such a trim, and falls back
// to trimDelay when it comes back later. Work further apart (a scrape every
// 15 s) still gets a trim after each: a few milliseconds every so often.

// A worker's start, too, runs code it never runs again: every package's
// init, the config's parsing, the handlers' registration, keys loaded. A
// second after it is ready, a worker drops the pages of its binary and of
// its shared libraries from its page tables, once (dropStartPages); what its
// requests run comes back with a minor fault each, the first time. Unlike
// the master's, this trim leaves alone a read-only mapping the program made
// itself (a data file, a database): its pages may be what the program is
// about to read.

// trimDelay is how long the master has to be quiet before it trims itself.
const trimDelay = time.Second

// maxWorkQuiet bounds the quiet a trim after work waits for: once traffic
// stops, the master is back at its floor within this.
const maxWorkQuiet = time.Minute

// masterGCPercent is the master's GOGC unless the environment sets one: the
// heap's minimum goal scales with it, to 1 MiB from 4, and collecting a heap
// this small costs next to nothing.
const masterGCPercent = 25

// setMasterGC applies masterGCPercent, and turns off the heap profile's
// sampling, which nobody reads in a master and whose table of call stacks
// took some of its resident memory.
func setMasterGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(masterGCPercent)
	}
	runtime.MemProfileRate = 0
}

// memoryTrimmer runs trims, one at a time, off the loop.
type memoryTrimmer struct {
	mu       sync.Mutex
	timer    *time.Timer
	due      time.Time     // when the pending trim runs; zero when none is
	by       time.Time     // a start or a reload asked for a trim no later than this
	quiet    time.Duration // what a trim after work waits for; zero means trimDelay
	workTrim time.Time     // when the last trim that only work asked for ran, until work follows it
	stopped  bool
	runMu    sync.Mutex // held by a trim under way
}

// soon asks for a trim trimDelay from now: after a start or a reload, whose
// pages nothing will touch again. Work that follows (afterWork) may not push
// it back, or steady traffic, whose reports arrive every reportInterval,
// would put it off for good.
func (t *memoryTrimmer) soon() { t.arm(true) }

// afterWork asks for a trim once the master has been quiet for a while
// (trimDelay, or longer under steady traffic) after work that touched code
// the master rarely runs (a report, a state file write, a scrape). More work
// before then pushes it back.
func (t *memoryTrimmer) afterWork() { t.arm(false) }

func (t *memoryTrimmer) arm(firm bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	at := t.plan(time.Now(), firm)
	if t.timer == nil {
		t.timer = time.AfterFunc(time.Until(at), t.fire)
	} else {
		t.timer.Reset(time.Until(at))
	}
}

// plan sets and returns when the pending trim runs, given a request for
// one at now. t.mu is held.
func (t *memoryTrimmer) plan(now time.Time, firm bool) time.Time {
	if t.quiet == 0 {
		t.quiet = trimDelay
	}
	if !firm && !t.workTrim.IsZero() {
		// The first work after a trim that work asked for: if it
		// came soon, that trim dropped pages still in use.
		if now.Sub(t.workTrim) < t.quiet {
			t.quiet = min(2*t.quiet, maxWorkQuiet)
		} else {
			t.quiet = trimDelay
		}
		t.workTrim = time.Time{}
	}
	at := now.Add(t.quiet)
	if firm {
		at = now.Add(trimDelay)
		if t.by.IsZero() || at.Before(t.by) {
			t.by = at
		}
	}
	if !t.by.IsZero() && at.After(t.by) {
		at = t.by
	}
	t.due = at
	return at
}

// fire runs the trim that is due. One that was pushed back after its timer
// had fired waits for the timer's next run.
func (t *memoryTrimmer) fire() {
	t.mu.Lock()
	ok := !t.stopped && t.take(time.Now())
	t.mu.Unlock()
	if ok {
		t.trim()
	}
}

// take reports whether a trim is due at now, and if so, marks it taken.
// t.mu is held.
func (t *memoryTrimmer) take(now time.Time) bool {
	if t.due.IsZero() || now.Before(t.due) {
		return false
	}
	if t.by.IsZero() {
		t.workTrim = now
	}
	t.due, t.by = time.Time{}, time.Time{}
	return true
}

func (t *memoryTrimmer) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	if t.timer != nil {
		t.timer.Stop()
	}
}

func (t *memoryTrimmer) trim() {
	t.runMu.Lock()
	defer t.runMu.Unlock()
	debug.FreeOSMemory()
	dropFilePages(nil)
}

// dropStartPages is a worker's trim after its start: the pages of its
// binary, found by the device and inode of /proc/self/exe (which a deploy
// that replaced the file does not change), and of the shared libraries the
// dynamic loader mapped.
func dropStartPages() {
	if code, err := programCode(); err == nil {
		dropFilePages(code)
	}
}

// programCode tells the mappings of the program's binary and shared
// libraries.
func programCode() (func(fileMapping) bool, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return nil, err
	}
	exe := fmt.Sprintf("%02x:%02x %d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	return func(m fileMapping) bool { return m.file == exe || isSharedLib(m.path) }, nil
}

// isSharedLib tells a shared library by its name: libc.so.6,
// ld-linux-x86-64.so.2, libfoo.so.
func isSharedLib(path string) bool {
	base := filepath.Base(path)
	return strings.HasSuffix(base, ".so") || strings.Contains(base, ".so.")
}

// dropFilePages drops from this process's page tables the pages of every
// read-only file mapping that holds no page of its own, and that only
// accepts (every one if only is nil): the binary's code and read-only
// data, and those of the shared libraries. A mapping written before it was
// made read-only (relocations under RELRO, in a PIE or a shared library)
// holds private copies, which MADV_DONTNEED would discard for the file's
// original bytes; smaps counts them as Anonymous, and such a mapping is
// left alone. Errors leave memory as it was.
func dropFilePages(only func(fileMapping) bool) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return
	}
	drop, err := droppableMappings(f)
	f.Close()
	if err != nil {
		return
	}
	for _, m := range drop {
		if only != nil && !only(m) {
			continue
		}
		unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED)
	}
}

// droppableMappings reads smaps and returns the mappings dropFilePages may
// drop.
func droppableMappings(r io.Reader) ([]fileMapping, error) {
	var drop []fileMapping
	var cur fileMapping
	flush := func() {
		if cur.ok {
			drop = append(drop, cur)
		}
		cur = fileMapping{}
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		if isMappingHeader(line) {
			flush()
			cur = parseMappingHeader(line)
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte("Anonymous:")); ok && cur.ok {
			if kb := bytes.Fields(v); len(kb) == 0 || string(kb[0]) != "0" {
				cur.ok = false
			}
		}
	}
	flush()
	return drop, sc.Err()
}

// isMappingHeader tells a mapping's first line in smaps ("start-end perms
// offset dev inode [path]") from its "Key: value" lines.
func isMappingHeader(line []byte) bool {
	i := bytes.IndexByte(line, ' ')
	return i > 0 && bytes.IndexByte(line[:i], '-') > 0 && !bytes.HasSuffix(line[:i], []byte(":"))
}

// fileMapping is a mapping of smaps: its range, and whether its pages may
// be dropped.
type fileMapping struct {
	start, end uintptr
	ok         bool   // read-only, file-backed, and (once its lines are read) no Anonymous pages
	file       string // "major:minor inode", as smaps writes them
	path       string
}

// parseMappingHeader reads a mapping's range and says whether it is one to
// drop: not writable, backed by a file (an inode), not a [special] one.
func parseMappingHeader(line []byte) (m fileMapping) {
	f := bytes.Fields(line)
	if len(f) < 6 {
		return m
	}
	lo, hi, found := bytes.Cut(f[0], []byte("-"))
	start, err1 := strconv.ParseUint(string(lo), 16, 64)
	end, err2 := strconv.ParseUint(string(hi), 16, 64)
	if !found || err1 != nil || err2 != nil || end <= start {
		return m
	}
	perms, inode := f[1], string(f[4])
	m.start, m.end = uintptr(start), uintptr(end)
	m.file = string(f[3]) + " " + inode
	m.path = string(bytes.Join(f[5:], []byte(" ")))
	m.ok = len(perms) == 4 && perms[0] == 'r' && perms[1] != 'w' && inode != "0" && f[5][0] != '['
	return m
}

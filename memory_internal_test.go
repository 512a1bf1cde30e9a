package gozd

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Which mappings of an smaps listing the master drops: read-only file
// mappings without private copies; never a writable one, an anonymous one, a
// [special] one, or a RELRO one (made read-only after the dynamic linker
// wrote relocations into it: its pages are the process's own).
func TestDroppableMappings(t *testing.T) {
	const smaps = `00400000-0078b000 r-xp 00000000 fe:00 1234                     /srv/app
Rss:                3216 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
0078b000-00b3f000 r--p 0038b000 fe:00 1234                     /srv/app
Anonymous:             0 kB
00b3f000-00b9d000 rw-p 0073f000 fe:00 1234                     /srv/app
Anonymous:           312 kB
00b9d000-00bc0000 rw-p 00000000 00:00 0 
Anonymous:           100 kB
7f43ef928000-7f43ef92a000 r--p 00000000 fe:00 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f43efaf9000-7f43efafd000 r--p 001d0000 fe:00 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:            16 kB
7ffd1b5f2000-7ffd1b5f6000 r--p 00000000 00:00 0                          [vvar]
Anonymous:             0 kB
7ffd1b5f6000-7ffd1b5f8000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB
7f0000000000-7f0000001000 r--s 00000000 00:05 77                         /memfd:data (deleted)
Anonymous:             0 kB
`
	got, err := droppableMappings(strings.NewReader(smaps))
	if err != nil {
		t.Fatal(err)
	}
	want := []fileMapping{
		{0x400000, 0x78b000, true, "fe:00 1234", "/srv/app"},
		{0x78b000, 0xb3f000, true, "fe:00 1234", "/srv/app"},
		{0x7f43ef928000, 0x7f43ef92a000, true, "fe:00 99", "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{0x7f0000000000, 0x7f0000001000, true, "00:05 77", "/memfd:data (deleted)"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: got %+v; want %+v", i, got[i], want[i])
		}
	}
}

// Under steady traffic a trim that work asked for is undone by the next
// report: the quiet such a trim waits for doubles each time work follows it
// that soon, up to maxWorkQuiet, and is back at trimDelay once work follows a
// trim later than that. A start's or a reload's trim still comes trimDelay
// after it, however long the quiet after work has grown.
func TestTrimQuietAdapts(t *testing.T) {
	var tr memoryTrimmer
	t0 := time.Unix(1e9, 0)
	ms := time.Millisecond

	// Work, a second of quiet, a trim; work again 200 ms later, and so on.
	now := t0
	var quiets []time.Duration
	for range 8 {
		due := tr.plan(now, false)
		quiets = append(quiets, due.Sub(now))
		if tr.take(due.Add(-time.Nanosecond)) {
			t.Fatal("a trim taken before it was due")
		}
		if !tr.take(due) {
			t.Fatal("a due trim not taken")
		}
		now = due.Add(200 * ms)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	if !slices.Equal(quiets, want) {
		t.Fatalf("quiet before each trim after work %v, want %v", quiets, want)
	}

	// A reload, while the quiet after work is a minute: its trim comes a
	// second later, and work meanwhile does not put it off.
	if due := tr.plan(now, true); due != now.Add(trimDelay) {
		t.Fatalf("a reload's trim due %v after it, want %v", due.Sub(now), trimDelay)
	}
	if due := tr.plan(now.Add(500*ms), false); due != now.Add(trimDelay) {
		t.Fatalf("work after a reload moved its trim to %v after the reload, want %v", due.Sub(now), trimDelay)
	}
	if !tr.take(now.Add(trimDelay)) {
		t.Fatal("the reload's trim not taken")
	}
	// Work right after it: a trim a reload asked for says nothing of the
	// work's pages, so the quiet stays as it was.
	now = now.Add(trimDelay + 100*ms)
	if due := tr.plan(now, false); due.Sub(now) != time.Minute {
		t.Fatalf("quiet after work, following a reload's trim: %v, want %v", due.Sub(now), time.Minute)
	}
	if !tr.take(now.Add(time.Minute)) {
		t.Fatal("a due trim not taken")
	}

	// Traffic stopped: the next work comes long after the last trim.
	now = now.Add(time.Minute + 5*time.Minute)
	if due := tr.plan(now, false); due.Sub(now) != trimDelay {
		t.Fatalf("quiet after work once traffic stopped: %v, want %v", due.Sub(now), trimDelay)
	}
}

// A worker's trim after its start drops the pages of its binary from its
// page tables and leaves a read-only mapping the program made itself (a
// data file) resident.
func TestDropStartPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	const size = 1 << 20
	if err := os.WriteFile(path, bytes.Repeat([]byte{1}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_PRIVATE)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(data)
	sum := 0
	for i := 0; i < size; i += os.Getpagesize() {
		sum += int(data[i])
	}
	if sum == 0 {
		t.Fatal("the data file reads as zeros")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	beforeExe, beforeData := residentKiB(t, exe), residentKiB(t, path)
	dropStartPages()
	afterExe, afterData := residentKiB(t, exe), residentKiB(t, path)
	t.Logf("binary resident %d → %d KiB; data file %d → %d KiB", beforeExe, afterExe, beforeData, afterData)
	if beforeData != size>>10 || afterData != beforeData {
		t.Errorf("the data file's mapping: %d KiB resident before, %d after; want %d both times", beforeData, afterData, size>>10)
	}
	// Reading smaps again faults some of the binary's pages back (2.5 to
	// 3 MiB of the test binary's, of 6 to 10 before), so the test asks
	// for a drop of at least 1 MiB, not for none left.
	if beforeExe-afterExe < 1024 {
		t.Errorf("the binary's resident pages went from %d to %d KiB; want them dropped", beforeExe, afterExe)
	}
}

// residentKiB sums the Rss of this process's mappings of path, in KiB.
func residentKiB(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	total, in := 0, false
	for line := range strings.Lines(string(b)) {
		if isMappingHeader([]byte(line)) {
			in = strings.HasSuffix(strings.TrimSpace(line), " "+path)
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("smaps line %q: %v", line, err)
			}
			total += kb
		}
	}
	return total
}

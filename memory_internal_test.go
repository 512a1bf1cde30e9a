package gozd

import (
	"strings"
	"testing"
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
		{0x400000, 0x78b000, true},
		{0x78b000, 0xb3f000, true},
		{0x7f43ef928000, 0x7f43ef92a000, true},
		{0x7f0000000000, 0x7f0000001000, true},
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

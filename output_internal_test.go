package gozd

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestScanOutput: a worker's output reaches the master's log line by line,
// a line longer than outputLineMax in pieces that long, and the last bytes
// without a newline too, however the pipe delivers them.
func TestScanOutput(t *testing.T) {
	long := strings.Repeat("x", outputLineMax+4464)
	exact := strings.Repeat("y", outputLineMax)
	in := "one\n" + "two\r\n" + long + "\n" + exact + "\n" + "\n" + "last"
	want := []string{"one\n", "two\r\n", long[:outputLineMax], long[outputLineMax:] + "\n", exact, "\n", "\n", "last"}
	for name, r := range map[string]io.Reader{
		"whole":            strings.NewReader(in),
		"a byte at a time": iotest.OneByteReader(strings.NewReader(in)),
	} {
		t.Run(name, func(t *testing.T) {
			var got []string
			scanOutput(r, func(line []byte) { got = append(got, string(line)) })
			if len(got) != len(want) {
				t.Fatalf("got %d lines, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("line %d: got %s, want %s", i, brief(got[i]), brief(want[i]))
				}
			}
		})
	}
}

// brief quotes s, or its ends and length when it is long.
func brief(s string) string {
	if len(s) <= 40 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q…%q (%d bytes)", s[:16], s[len(s)-16:], len(s))
}

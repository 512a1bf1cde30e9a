package gozd

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseControlMsg(t *testing.T) {
	for _, tc := range []struct {
		line string
		want controlMsg
		ok   bool
	}{
		{"ready", controlMsg{kind: msgReady}, true},
		{"drain", controlMsg{kind: msgDrain}, true},
		{"stop", controlMsg{kind: msgStop}, true},
		{"draining 0", controlMsg{kind: msgDraining}, true},
		{"draining 12", controlMsg{kind: msgDraining, connections: 12}, true},
		{"draining", controlMsg{}, false},
		{"draining -1", controlMsg{}, false},
		{"draining 99999999999999999999", controlMsg{}, false},
		{"draining 1 2", controlMsg{}, false},
		{"ready now", controlMsg{}, false},
		{"", controlMsg{}, false},
		{"reload", controlMsg{}, false},
		{"READY", controlMsg{}, false},
	} {
		got, err := parseControlMsg(tc.line)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseControlMsg(%q) = %+v, %v; want %+v, ok %v", tc.line, got, err, tc.want, tc.ok)
		}
		if err == nil && got.String() != tc.line {
			t.Errorf("parseControlMsg(%q).String() = %q", tc.line, got.String())
		}
	}
}

// FuzzParseControlMsg: no line from the control socket makes either side
// panic, and whatever decodes is a message that reads back the same.
func FuzzParseControlMsg(f *testing.F) {
	for _, s := range []string{"ready", "drain", "stop", "draining 3", "draining -3", "draining ", " ready", "draining 0x10", "draining +1", "draining 007"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseControlMsg(line)
		if err != nil {
			return
		}
		if again, err := parseControlMsg(m.String()); err != nil || again != m {
			t.Fatalf("parseControlMsg(%q) = %+v, which reads back as %+v, %v", line, m, again, err)
		}
		if m.connections < 0 {
			t.Fatalf("parseControlMsg(%q): negative count %d", line, m.connections)
		}
	})
}

// testHandover is what a master passes a worker for a two-group config.
func testHandover(t testing.TB) []byte {
	cfg, err := ParseConfig("", strings.NewReader("[web]\nmode http\nlisten 127.0.0.1:0\n[app]\nmode fcgi\nlisten /tmp/app.sock\nchmod 0660\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(&handover{Generation: 3, Config: cfg, Listeners: map[string]int{"web": 4, "app": 5}, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeHandover(t *testing.T) {
	good := testHandover(t)
	h, err := decodeHandover(good)
	if err != nil {
		t.Fatal(err)
	}
	if h.Generation != 3 || !h.Verbose || len(h.Config.Groups) != 2 || h.Listeners["app"] != 5 {
		t.Errorf("decodeHandover = %+v", h)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"not json", `{`, `[`, "invalid character"},
		{"no config", `"config":`, `"nothing":`, "no config"},
		{"listener on the control socket", `"web":4`, `"web":3`, "not past the control socket"},
		{"listener on stdin", `"web":4`, `"web":0`, "not past the control socket"},
		{"negative listener", `"web":4`, `"web":-1`, "not past the control socket"},
		{"group without a listener", `"app":5,`, ``, "1 listeners for 2 groups"},
		{"listener for no group", `"web":4`, `"other":4`, `no listener for group "web"`},
		{"invalid config", `"Mode":"http"`, `"Mode":"gopher"`, "unknown mode"},
	} {
		b := []byte(strings.Replace(string(good), tc.from, tc.to, 1))
		if _, err := decodeHandover(b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: decodeHandover(%s) = %v; want an error with %q", tc.name, b, err, tc.want)
		}
	}
}

// FuzzDecodeHandover: no handover in the environment makes a worker panic,
// and one that decodes names a valid config and a listener past the control
// socket for each of its groups.
func FuzzDecodeHandover(f *testing.F) {
	f.Add(testHandover(f))
	f.Add([]byte(`{"gen":1,"config":{"Groups":[{"Name":"a","Mode":"tcp","Network":"tcp","Address":":0"}]},"fds":{"a":4}}`))
	f.Add([]byte(`{"config":null}`))
	f.Add([]byte(`{"config":{"Groups":[{"Name":"a","Mode":"https","Network":"unix","Address":"/x","Key":"/dev/zero"}]},"fds":{"a":4}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHandover(b)
		if err != nil {
			return
		}
		if err := h.Config.Validate(); err != nil {
			t.Fatalf("decoded a config that does not validate: %v", err)
		}
		for _, g := range h.Config.Groups {
			if fd, ok := h.Listeners[g.Name]; !ok || fd <= workerControlFD {
				t.Fatalf("group %q: listener %d, %v", g.Name, fd, ok)
			}
		}
	})
}

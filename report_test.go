package gozd

import "testing"

func TestParseReportMsg(t *testing.T) {
	for _, tc := range []struct {
		line string
		want controlMsg
		ok   bool
	}{
		{`build {"path":"example.com/app","go":"go1.26"}`, controlMsg{kind: msgBuild, payload: `{"path":"example.com/app","go":"go1.26"}`}, true},
		{`stats {"groups":[]}`, controlMsg{kind: msgStats, payload: `{"groups":[]}`}, true},
		{"lameduck", controlMsg{kind: msgLameDuck}, true},
		{"lameduck now", controlMsg{}, false},
		{"build", controlMsg{}, false},
		{"build ", controlMsg{}, false},
		{"stats [1]", controlMsg{}, false},
		{"stats {", controlMsg{}, false},
		{`stats "x"`, controlMsg{}, false},
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

func TestHeldBy(t *testing.T) {
	s := &workerStats{Groups: []groupStats{
		{Name: "web", Active: 3, Idle: 1, Kinds: map[string]int{kindHTTPIdle: 1, kindHijacked: 1, kindHTTPActive: 2}},
		{Name: "idle"},
		{Name: "echo", Active: 1, Kinds: map[string]int{kindTCP: 1}},
	}}
	if got, want := s.heldBy(), "web: 2 http active, 1 http idle, 1 hijacked; echo: 1 tcp"; got != want {
		t.Errorf("heldBy = %q, want %q", got, want)
	}
	if got := s.connections(); got != 5 {
		t.Errorf("connections = %d, want 5", got)
	}
}

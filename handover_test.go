package gozd

import (
	"encoding/json"
	"fmt"
	"reflect"
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

// TestParseHandover holds the worker's decoder of its handover to
// json.Unmarshal: for a handover whose every field json.Marshal writes has a
// value of its own (a field added to Config and not decoded fails here),
// for the master's real one, and for JSON's own cases (null, absent, empty).
func TestParseHandover(t *testing.T) {
	var full handover
	n := 0
	fillExported(reflect.ValueOf(&full).Elem(), &n)
	texts := map[string][]byte{"every field set": mustMarshal(t, &full), "a master's": testHandover(t)}
	for name, text := range map[string]string{
		"nulls":       `{"gen":null,"config":{"File":null,"Groups":[null,{"Name":"a","Protocols":null},{"Protocols":["h2",null]}]},"fds":null,"nice":null}`,
		"empty":       `{"config":{"Groups":[],"MaxFDs":0},"fds":{},"nice":0}`,
		"unknown":     `{"later":{"x":[1,2]},"config":{"Groups":[{"Name":"a","Later":true}]},"fds":{"a":4}}`,
		"whitespace":  " {\"gen\": 7 }\n",
		"big numbers": `{"config":{"DrainTimeout":9223372036854775807,"MaxFDs":18446744073709551615,"Groups":[{"Chmod":4294967295}]}}`,
	} {
		texts[name] = []byte(text)
	}
	for name, b := range texts {
		var want handover
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := parseHandover(b)
		if err != nil {
			t.Errorf("%s: parseHandover(%s): %v", name, b, err)
			continue
		}
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("%s: parseHandover(%s)\n = %+v, config %+v\nwant %+v, config %+v", name, b, got, got.Config, &want, want.Config)
		}
	}
	for _, tc := range []struct{ text, want string }{
		{`{"gen":"3"}`, `gen: want a whole number of`},
		{`{"gen":1.5}`, `gen: want a whole number of`},
		{`{"config":{"Groups":[{"Chmod":-1}]}}`, `config.Groups[0].Chmod: want a whole number of 32 bits, 0 or more, have the number -1`},
		{`{"config":{"Groups":[{"Chmod":4294967296}]}}`, `Chmod: want a whole number of 32 bits`},
		{`{"config":{"Groups":{"Name":"a"}}}`, `config.Groups: want an array, have an object`},
		{`{"config":{"Groups":["a"]}}`, `config.Groups[0]: want an object, have "a"`},
		{`{"config":{"Groups":[{"Protocols":["h2",2]}]}}`, `config.Groups[0].Protocols[1]: want a string, have the number 2`},
		{`{"config":[]}`, `config: want an object, have an array`},
		{`{"fds":{"a":"4"}}`, `fds.a: want a whole number`},
		{`{"verbose":"yes"}`, `verbose: want true or false, have "yes"`},
		{`{"config":{"File":1}}`, `config.File: want a string, have the number 1`},
		{`[]`, `want a JSON object, have an array`},
		{`{} {}`, `more after the handover's JSON object`},
		{`{"gen":`, `unexpected EOF`},
	} {
		var v handover
		jsonErr := json.Unmarshal([]byte(tc.text), &v)
		if _, err := parseHandover([]byte(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseHandover(%s) = %v; want an error with %q", tc.text, err, tc.want)
		} else if jsonErr == nil {
			t.Errorf("parseHandover(%s) = %v, but json.Unmarshal takes it", tc.text, err)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fillExported gives every exported field under v a value of its own, not
// the zero value: strings, numbers and booleans, two elements for a slice
// or a map, a pointer to a filled value. *n counts the values made.
func fillExported(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillExported(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fillExported(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fillExported(k, n)
			fillExported(e, n)
			v.SetMapIndex(k, e)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillExported(v.Field(i), n)
			}
		}
	default:
		panic("fillExported: no value for a " + v.Kind().String())
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

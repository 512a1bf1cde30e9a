package gozd

// A worker decodes its handover first thing, in a process that has not run
// encoding/json before. There json.Unmarshal into handover took 0.2–0.3 ms
// of every reload: before it decodes a byte, encoding/json works out the
// fields of each struct type it meets (handover, Config, GroupConfig) and
// builds an encoder for each field's type. Decoded into maps and copied
// field by field, the same text takes about a third of that. The format
// stays json.Marshal's of handover, as every master writes it, older ones
// too; TestParseHandover holds this decoder to json.Unmarshal field by
// field, so a field added to Config and not copied here fails it.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// parseHandover decodes b, a handover as json.Marshal writes it, to what
// json.Unmarshal would make of it (without its leniency about the case of
// member names, which json.Marshal never needs).
func parseHandover(b []byte) (*handover, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("more after the handover's JSON object")
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a JSON object, have %s", jsonKind(v))
	}
	var err error
	f := jsonFields{m: top, err: &err}
	h := &handover{
		Generation: f.int("gen"),
		Verbose:    f.bool("verbose"),
		Inbox:      f.int("inbox"),
		Reports:    f.bool("reports"),
		Timeline:   f.bool("timeline"),
	}
	if c, ok := f.object("config"); ok {
		h.Config = c.config()
	}
	if fds, ok := f.object("fds"); ok {
		h.Listeners = make(map[string]int, len(fds.m))
		for name := range fds.m {
			h.Listeners[name] = fds.int(name)
		}
	}
	if v, ok := top["nice"]; ok && v != nil {
		n := f.int("nice")
		h.Nice = &n
	}
	if err != nil {
		return nil, err
	}
	return h, nil
}

func (f jsonFields) config() *Config {
	c := &Config{
		File:         f.string("File"),
		PidFile:      f.string("PidFile"),
		LogFile:      f.string("LogFile"),
		DrainTimeout: time.Duration(f.integer("DrainTimeout", 64)),
		ReadyTimeout: time.Duration(f.integer("ReadyTimeout", 64)),
		User:         f.string("User"),
		UserGroup:    f.string("UserGroup"),
		MaxFDs:       f.unsigned("MaxFDs", 64),
		StartBoost:   f.int("StartBoost"),
		OpsConfig: OpsConfig{
			ShutdownDelay: time.Duration(f.integer("ShutdownDelay", 64)),
			LogLevel:      f.string("LogLevel"),
			LogFormat:     f.string("LogFormat"),
		},
	}
	if groups, ok := f.array("Groups"); ok {
		c.Groups = make([]GroupConfig, len(groups))
		for i := range groups {
			if g, ok := f.element("Groups", groups, i); ok {
				c.Groups[i] = g.group()
			}
		}
	}
	return c
}

func (f jsonFields) group() GroupConfig {
	g := GroupConfig{
		Name:     f.string("Name"),
		Mode:     Mode(f.string("Mode")),
		Network:  f.string("Network"),
		Address:  f.string("Address"),
		Key:      f.string("Key"),
		Cert:     f.string("Cert"),
		Chmod:    os.FileMode(f.unsigned("Chmod", 32)),
		Owner:    f.string("Owner"),
		Line:     f.int("Line"),
		Health:   f.string("Health"),
		Metrics:  f.string("Metrics"),
		ClientCA: f.string("ClientCA"),
	}
	if protocols, ok := f.array("Protocols"); ok {
		g.Protocols = make([]string, len(protocols))
		for i, p := range protocols {
			g.Protocols[i], _ = as[string](f, fmt.Sprintf("Protocols[%d]", i), p, "a string")
		}
	}
	return g
}

// jsonFields reads the members of one decoded JSON object. A member that is
// missing or null reads as the zero value, as json.Unmarshal leaves it; one
// of the wrong kind records the first such problem in *err.
type jsonFields struct {
	m   map[string]any
	at  string // the object's place, for messages: "config.Groups[1]."
	err *error
}

func (f jsonFields) fail(key, want string, v any) {
	if *f.err == nil {
		*f.err = fmt.Errorf("%s%s: want %s, have %s", f.at, key, want, jsonKind(v))
	}
}

// as reads v, the member or element at key, as a T. ok is false when v is
// null, which reads as T's zero value as json.Unmarshal leaves it, or of
// another kind, which also reads as the zero value and is recorded.
func as[T any](f jsonFields, key string, v any, want string) (t T, ok bool) {
	t, ok = v.(T)
	if !ok && v != nil {
		f.fail(key, want, v)
	}
	return t, ok
}

func (f jsonFields) string(key string) string {
	s, _ := as[string](f, key, f.m[key], "a string")
	return s
}

func (f jsonFields) bool(key string) bool {
	b, _ := as[bool](f, key, f.m[key], "true or false")
	return b
}

func (f jsonFields) int(key string) int { return int(f.integer(key, strconv.IntSize)) }

// integer reads a whole number that fits in bits.
func (f jsonFields) integer(key string, bits int) int64 {
	return whole(f, key, bits, strconv.ParseInt, "a whole number of %d bits")
}

// unsigned reads a whole number, 0 or more, that fits in bits.
func (f jsonFields) unsigned(key string, bits int) uint64 {
	return whole(f, key, bits, strconv.ParseUint, "a whole number of %d bits, 0 or more")
}

// whole reads member key as a whole number that parse takes in bits; want,
// given bits, says what was wanted. It is formatted only for a message: a
// worker reads every number of its handover on the way to its ready.
func whole[T int64 | uint64](f jsonFields, key string, bits int, parse func(string, int, int) (T, error), want string) T {
	v := f.m[key]
	n, ok := v.(json.Number)
	if !ok {
		if v != nil {
			f.fail(key, fmt.Sprintf(want, bits), v)
		}
		return 0
	}
	t, err := parse(string(n), 10, bits)
	if err != nil {
		f.fail(key, fmt.Sprintf(want, bits), n)
	}
	return t
}

// object reads a member that is an object; ok is false when it is missing
// or null.
func (f jsonFields) object(key string) (jsonFields, bool) {
	m, ok := as[map[string]any](f, key, f.m[key], "an object")
	return jsonFields{m: m, at: f.at + key + ".", err: f.err}, ok
}

// array reads a member that is an array; ok is false when it is missing or
// null.
func (f jsonFields) array(key string) ([]any, bool) {
	return as[[]any](f, key, f.m[key], "an array")
}

// element reads the i-th element of the array member key, an object.
func (f jsonFields) element(key string, a []any, i int) (jsonFields, bool) {
	at := fmt.Sprintf("%s[%d]", key, i)
	m, ok := as[map[string]any](f, at, a[i], "an object")
	return jsonFields{m: m, at: f.at + at + ".", err: f.err}, ok
}

// jsonKind names what a decoded JSON value is, for messages.
func jsonKind(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(v)
	case json.Number:
		return "the number " + string(v)
	case bool:
		return strconv.FormatBool(v)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

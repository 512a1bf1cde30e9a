package gozd

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Mode is how a group serves the connections on its listener.
type Mode string

// The modes a group may have.
const (
	ModeTCP   Mode = "tcp"   // raw connections, handled by a func(Conn)
	ModeHTTP  Mode = "http"  // plain HTTP, handled by an http.Handler
	ModeHTTPS Mode = "https" // HTTP over TLS with the group's key and cert
	ModeFCGI  Mode = "fcgi"  // FastCGI responder behind a web server
	ModeUDP   Mode = "udp"   // datagrams, handled by a func(PacketConn)
)

func (m Mode) valid() bool {
	switch m {
	case ModeTCP, ModeHTTP, ModeHTTPS, ModeFCGI, ModeUDP:
		return true
	}
	return false
}

// Defaults for the zero values of Config.DrainTimeout and Config.ReadyTimeout.
const (
	DefaultDrainTimeout = 30 * time.Second
	DefaultReadyTimeout = 60 * time.Second
)

// Config is a parsed configuration file (or one built in code).
type Config struct {
	File         string        // absolute path it was read from; "" when built in code
	PidFile      string        // "" = <name>.pid in a private runtime directory derived from File: /run/gozd/<name>-<hash>/ for root, see the package doc
	LogFile      string        // background log; "" = <name>.log beside the default pid file (with -f gozd logs to stderr)
	DrainTimeout time.Duration // 0 means DefaultDrainTimeout
	ReadyTimeout time.Duration // 0 means DefaultReadyTimeout
	User         string        // account workers run as, name or uid; "" = unchanged
	UserGroup    string        // group workers run as (the group directive), name or gid; "" = unchanged
	MaxFDs       uint64        // RLIMIT_NOFILE; 0 = unchanged
	StartBoost   int           // nice levels the master, and a worker until ready, run above the master's start priority (priority.go); a parsed file has DefaultStartBoost unless it says
	Groups       []GroupConfig // in file order

	OpsConfig // shutdown_delay, log_level, log_format (config_ops.go)

	// A worker gets its Config from the master as JSON and decodes it
	// field by field: a field added here, in OpsConfig or in GroupConfig
	// needs its line in handover_decode.go (TestParseHandover fails until
	// then).
}

// GroupConfig is one listener group: a named address served in one Mode.
type GroupConfig struct {
	Name    string
	Mode    Mode
	Network string      // "tcp", "unix", or "udp" for mode udp
	Address string      // tcp: host:port as net.Listen takes it (":9000" for all interfaces); unix: the socket path, absolute when parsed
	Key     string      // https only: path of the PEM private key, absolute when parsed
	Cert    string      // https only: path of the PEM certificate chain, absolute when parsed
	Chmod   os.FileMode // unix sockets: mode of the socket file; 0 = as created (0777 minus the umask)
	Owner   string      // unix sockets: owner of the socket file, "user:group", "user" or ":group" (names or ids); "" = the master's
	Line    int         // line of the [Name] header in Config.File, for messages; 0 when built in code
	Health  string      // http, https: path gozd answers health checks on itself; "" = none
	Metrics string      // http, https: path gozd serves Prometheus metrics on; "" = none

	// Owner's ids as the parse looked them up, so the master binding the
	// socket does no user lookup (NSS, LDAP: it may hang) in its loop.
	owner *ownerIDs

	// Protocols (http, https): "http1", "h2" (https), "h2c" (http); nil =
	// the mode's default, http1 for http and http1 h2 for https.
	Protocols []string `json:",omitempty"`
	ClientCA  string   `json:",omitempty"` // https: PEM file of the CAs whose client certificates are required; "" = none asked
}

type ownerIDs struct{ uid, gid int }

// ownerIDs returns the uid and gid Owner names, -1 for a part not given.
func (g *GroupConfig) ownerIDs() (uid, gid int, err error) {
	if g.owner != nil {
		return g.owner.uid, g.owner.gid, nil
	}
	return lookupOwner(g.Owner)
}

// ConfigErrors are the problems found in one configuration file, in the
// order of their lines, when there is more than one. A parse stops after 20.
// errors.As finds the first *ConfigError in it.
type ConfigErrors []*ConfigError

// Error returns one "FILE:LINE: message" line for each error.
func (e ConfigErrors) Error() string {
	lines := make([]string, len(e))
	for i, ce := range e {
		lines[i] = ce.Error()
	}
	if len(e) >= maxConfigErrors {
		lines = append(lines, fmt.Sprintf("(stopped after %d errors)", maxConfigErrors))
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns each error, for errors.Is and errors.As.
func (e ConfigErrors) Unwrap() []error {
	errs := make([]error, len(e))
	for i, ce := range e {
		errs[i] = ce
	}
	return errs
}

// ConfigError is a problem in a configuration file, at a line.
// Line is 0 when the problem is not tied to one line (an unreadable file,
// a Config built in code).
type ConfigError struct {
	File string
	Line int
	Err  error
}

// Error returns "FILE:LINE: message", leaving out the parts that are unknown.
func (e *ConfigError) Error() string {
	msg := "invalid configuration"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, msg)
	case e.File != "":
		return e.File + ": " + msg
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, msg)
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// maxConfigSize is the largest configuration file LoadConfig reads: far more
// than any real config needs.
const maxConfigSize = 1 << 20

// LoadConfig reads and parses the configuration file at path, which is made
// absolute first so that Config.File and messages stay right after a chdir.
// The file must be a regular file of at most 1 MiB: a FIFO, a
// device such as /dev/zero or a runaway file is refused rather than read, so
// that neither a start nor a reload can hang or bloat on it.
// Every error is a *ConfigError; one for an unreadable file wraps the os error.
func LoadConfig(path string) (*Config, error) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	fail := func(err error) (*Config, error) {
		return nil, &ConfigError{File: path, Err: fmt.Errorf("reading config: %w", err)}
	}
	// O_NONBLOCK: opening a FIFO would otherwise wait for a writer. It
	// changes nothing for the regular file that is read.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("not a regular file but %s; name the config file itself", fileKind(fi.Mode())))
	}
	if fi.Size() > maxConfigSize {
		return fail(fmt.Errorf("%d bytes, over the limit of %d bytes (1 MiB)", fi.Size(), maxConfigSize))
	}
	// The size may have grown since the stat: read one byte past the limit
	// to tell.
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return fail(err)
	}
	if len(data) > maxConfigSize {
		return fail(fmt.Errorf("over the limit of %d bytes (1 MiB)", maxConfigSize))
	}
	return ParseConfig(path, bytes.NewReader(data))
}

// fileKind names what a file that is not a regular file is, for messages.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}

// ParseConfig parses a configuration file read from r. name, made absolute,
// becomes Config.File and names the file in messages; relative paths in the
// file resolve against its directory (against the working directory when name
// is ""). Key and cert files are loaded, so a bad pair fails here rather than
// in a worker. The result has passed Validate. Every error is a *ConfigError.
func ParseConfig(name string, r io.Reader) (*Config, error) {
	if name != "" {
		if abs, err := filepath.Abs(name); err == nil {
			name = abs
		}
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, &ConfigError{File: name, Err: fmt.Errorf("reading config: %w", err)}
	}
	p := &configParser{
		cfg:     &Config{File: name, StartBoost: DefaultStartBoost},
		globals: map[string]int{},
		headers: map[string]int{},
	}
	if name != "" {
		p.dir = filepath.Dir(name)
	}
	if err := p.parse(string(data)); err != nil {
		return nil, err
	}
	return p.cfg, nil
}

// Validate checks what must hold for the whole configuration: every group
// has a valid name, a known mode and a well-formed address of a known network;
// https groups have a key and cert and no other group has them; chmod and
// owner are only on unix sockets, and owner is well formed; group names and
// addresses are unique (tcp port 0, "any free port", never clashes). It does
// not read key or cert files and does not try the addresses. The error is a
// *ConfigError at the group's line when known, or ConfigErrors when there
// are several.
func (c *Config) Validate() error {
	var errs configErrors
	if c.DrainTimeout < 0 {
		errs.add(&ConfigError{File: c.File, Err: fmt.Errorf("drain_timeout %v is negative", c.DrainTimeout)})
	}
	if c.StartBoost < 0 || c.StartBoost > maxStartBoost {
		errs.add(&ConfigError{File: c.File, Err: fmt.Errorf("start_boost %d is out of range 0–%d", c.StartBoost, maxStartBoost)})
	}
	if c.ReadyTimeout < 0 {
		errs.add(&ConfigError{File: c.File, Err: fmt.Errorf("ready_timeout %v is negative", c.ReadyTimeout)})
	}
	names := make(map[string]*GroupConfig, len(c.Groups))
	addrs := make(map[string]*GroupConfig, len(c.Groups))
	var bound []*GroupConfig // the groups in addrs, in file order
	for i := range c.Groups {
		if errs.full() {
			break
		}
		g := &c.Groups[i]
		fail := func(format string, args ...any) {
			errs.add(&ConfigError{File: c.File, Line: g.Line, Err: fmt.Errorf(format, args...)})
		}
		if err := g.validate(); err != nil {
			errs.add(&ConfigError{File: c.File, Line: g.Line, Err: err})
			continue
		}
		if first, ok := names[g.Name]; ok {
			fail("duplicate group %q%s", g.Name, atLine(first.Line))
			continue
		}
		names[g.Name] = g
		key, ok := g.addressKey()
		if !ok {
			continue
		}
		if first, ok := addrs[key]; ok {
			fail("groups %q%s and %q both listen on %s", first.Name, atLine(first.Line), g.Name, g.Address)
			continue
		}
		if i := slices.IndexFunc(bound, func(other *GroupConfig) bool { return wildcardOverlap(other, g) }); i >= 0 {
			other := bound[i]
			fail("groups %q%s and %q listen on overlapping addresses %s and %s", other.Name, atLine(other.Line), g.Name, other.Address, g.Address)
			continue
		}
		addrs[key] = g
		bound = append(bound, g)
	}
	return errs.err()
}

// Group returns the group called name.
func (c *Config) Group(name string) (*GroupConfig, bool) {
	for i := range c.Groups {
		if c.Groups[i].Name == name {
			return &c.Groups[i], true
		}
	}
	return nil, false
}

func (c *Config) drainTimeout() time.Duration {
	if c == nil || c.DrainTimeout <= 0 {
		return DefaultDrainTimeout
	}
	return c.DrainTimeout
}

func (c *Config) readyTimeout() time.Duration {
	if c == nil || c.ReadyTimeout <= 0 {
		return DefaultReadyTimeout
	}
	return c.ReadyTimeout
}

// String names the group for log and error messages, e.g.
// `group "web" (http on 127.0.0.1:8080)`.
func (g *GroupConfig) String() string {
	if g.Mode == "" && g.Address == "" {
		return fmt.Sprintf("group %q", g.Name)
	}
	return fmt.Sprintf("group %q (%s on %s)", g.Name, g.Mode, g.Address)
}

// validate checks one group on its own; Validate adds the checks across groups.
func (g *GroupConfig) validate() error {
	if err := checkGroupName(g.Name); err != nil {
		return err
	}
	switch {
	case g.Mode == "":
		return fmt.Errorf("group %q has no mode", g.Name)
	case !g.Mode.valid():
		return fmt.Errorf("group %q: %w", g.Name, unknownMode(string(g.Mode)))
	case g.Address == "":
		return fmt.Errorf("group %q has no listen address", g.Name)
	}
	switch g.Network {
	case "tcp", "udp":
		if err := checkTCPAddress(g.Address); err != nil {
			return fmt.Errorf("group %q: %w", g.Name, err)
		}
	case "unix":
		if err := checkUnixPath(g.Address); err != nil {
			return fmt.Errorf("group %q: %w", g.Name, err)
		}
	default:
		return fmt.Errorf("group %q: bad network %q: use tcp, unix or udp", g.Name, g.Network)
	}
	if err := g.validateServing(); err != nil {
		return err
	}
	if g.Mode == ModeHTTPS {
		switch {
		case g.Key == "" && g.Cert == "":
			return fmt.Errorf("https group %q needs a key and a cert", g.Name)
		case g.Key == "":
			return fmt.Errorf("https group %q needs a key", g.Name)
		case g.Cert == "":
			return fmt.Errorf("https group %q needs a cert", g.Name)
		}
	} else if g.Key != "" || g.Cert != "" {
		return fmt.Errorf("group %q: key and cert apply only to https, not %s", g.Name, g.Mode)
	}
	if g.Chmod != 0 {
		if g.Network != "unix" {
			return fmt.Errorf("group %q: chmod applies only to unix sockets", g.Name)
		}
		if g.Chmod&^0o777 != 0 {
			return fmt.Errorf("group %q: chmod %#o is out of range 0..0777", g.Name, uint32(g.Chmod))
		}
	}
	if g.Owner != "" {
		if g.Network != "unix" {
			return fmt.Errorf("group %q: owner applies only to unix sockets", g.Name)
		}
		if _, _, err := splitOwner(g.Owner); err != nil {
			return fmt.Errorf("group %q: %w", g.Name, err)
		}
	}
	return nil
}

// addressKey identifies what g binds, for spotting two groups on one address.
// ok is false for tcp port 0, which binds a fresh port each time.
func (g *GroupConfig) addressKey() (key string, ok bool) {
	if g.Network == "unix" {
		return "unix " + filepath.Clean(g.Address), true
	}
	if _, port, err := net.SplitHostPort(g.Address); err == nil && port == "0" {
		return "", false
	}
	return g.Network + " " + g.Address, true
}

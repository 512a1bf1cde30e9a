package gozd

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
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

// maxUnixPath is the longest unix socket path that fits in sockaddr_un.sun_path
// (108 bytes on Linux) with its terminating NUL.
const maxUnixPath = 107

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
	Groups       []GroupConfig // in file order

	OpsConfig // shutdown_delay, log_level, log_format (config_ops.go)
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
		cfg:     &Config{File: name},
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

// wildcardOverlap reports whether two tcp groups on one port cannot both
// bind because one of them listens on every address: ":9000" or "[::]:9000"
// (all of IPv4 and IPv6) with anything, "0.0.0.0:9000" with an IPv4 address.
func wildcardOverlap(a, b *GroupConfig) bool {
	if a.Network != b.Network || a.Network != "tcp" && a.Network != "udp" {
		return false
	}
	ha, pa, err1 := net.SplitHostPort(a.Address)
	hb, pb, err2 := net.SplitHostPort(b.Address)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	all := func(h string) bool { return h == "" || h == "::" }
	if all(ha) || all(hb) {
		return true
	}
	ipv4 := func(h string) bool { ip := net.ParseIP(h); return ip != nil && ip.To4() != nil }
	return (ha == "0.0.0.0" && ipv4(hb)) || (hb == "0.0.0.0" && ipv4(ha))
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

func atLine(line int) string {
	if line <= 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", line)
}

var (
	globalDirectives = map[string]bool{
		"pidfile": true, "logfile": true, "drain_timeout": true, "ready_timeout": true,
		"user": true, "group": true, "maxfds": true,
	}
	groupDirectives = map[string]bool{
		"mode": true, "listen": true, "key": true, "cert": true, "chmod": true, "owner": true,
		"protocols": true, "client_ca": true,
	}
)

// configParser holds the state of one ParseConfig call.
type configParser struct {
	cfg     *Config
	dir     string         // where relative paths resolve; "" = working directory
	globals map[string]int // global directive -> its line
	headers map[string]int // group name -> line of its header
	errs    configErrors

	inGroup bool
	broken  bool           // the current group had an error: its own checks would only repeat it
	group   GroupConfig    // the group being read, appended when it ends
	seen    map[string]int // directive -> its line, in the current group
}

// parse reads the whole file, going on past errors so that one run reports
// every problem (up to maxConfigErrors), as an operator fixing a file wants.
// A group with an error in one of its lines is left out of the checks that
// would only follow from it (a bad listen value is not also "no listen").
func (p *configParser) parse(text string) error {
	text = strings.TrimPrefix(text, "\uFEFF")
	for i, line := range strings.Split(text, "\n") {
		if err := p.parseLine(i+1, line); err != nil {
			if ce, ok := err.(*ConfigError); ok { // from endGroup, already placed
				p.errs.add(ce)
			} else {
				p.errs.add(&ConfigError{File: p.cfg.File, Line: i + 1, Err: err})
				p.broken = p.broken || p.inGroup
			}
		}
		if p.errs.full() {
			return p.errs.err()
		}
	}
	p.endGroup()
	if err := p.checkAccountDirectives(); err != nil {
		p.errs.add(err.(*ConfigError))
	}
	if len(p.errs) > 0 {
		// Checks across groups would see a partial set of groups.
		slices.SortStableFunc(p.errs, func(a, b *ConfigError) int { return a.Line - b.Line })
		return p.errs.err()
	}
	if len(p.cfg.Groups) == 0 {
		return &ConfigError{File: p.cfg.File, Err: fmt.Errorf("no groups: add at least one [Name] section with mode and listen")}
	}
	return p.cfg.Validate()
}

// maxConfigErrors is how many errors one parse reports before it stops.
const maxConfigErrors = 20

// configErrors collects the errors of one parse or Validate.
type configErrors []*ConfigError

func (e *configErrors) add(ce *ConfigError) { *e = append(*e, ce) }

func (e configErrors) full() bool { return len(e) >= maxConfigErrors }

// err is nil, the one error, or ConfigErrors for several.
func (e configErrors) err() error {
	switch len(e) {
	case 0:
		return nil
	case 1:
		return e[0]
	}
	return ConfigErrors(e)
}

// checkAccountDirectives refuses group without user. Workers would be
// started with that group but the master's uid: under a root master, uid 0
// and every capability, which is no privilege drop at all, though the config
// reads like one.
func (p *configParser) checkAccountDirectives() error {
	line, ok := p.globals["group"]
	if _, user := p.globals["user"]; !ok || user {
		return nil
	}
	return &ConfigError{File: p.cfg.File, Line: line, Err: fmt.Errorf(
		"group %q without user: workers would keep the master's user id (root, with every capability, when the master runs as root); add a user directive naming the account workers run as, or remove group", p.cfg.UserGroup)}
}

func (p *configParser) parseLine(n int, line string) error {
	line = trimSpace(stripComment(line))
	if line == "" {
		return nil
	}
	if line[0] == '[' {
		return p.startGroup(n, line)
	}
	fields := splitFields(line)
	name := fields[0]
	switch {
	case globalDirectives[name] && p.inGroup:
		return fmt.Errorf("directive %q is global and must come before the first group", name)
	case groupDirectives[name] && !p.inGroup:
		return fmt.Errorf("directive %q belongs in a group: put it after a [Name] header", name)
	case !globalDirectives[name] && !groupDirectives[name]:
		return fmt.Errorf("unknown directive %q", name)
	case len(fields) == 1:
		return fmt.Errorf("directive %q needs a value", name)
	case len(fields) > 2 && name != "protocols":
		return fmt.Errorf("directive %q: one value expected, got %d", name, len(fields)-1)
	}
	value := fields[1]
	if name == "protocols" { // a list: "http1 h2"
		value = strings.Join(fields[1:], " ")
	}
	if len(value) >= 2 && value[0] == '[' && value[len(value)-1] == ']' {
		value = value[1 : len(value)-1]
	}
	if value == "" {
		return fmt.Errorf("directive %q needs a value", name)
	}
	seen := p.globals
	if p.inGroup {
		seen = p.seen
	}
	if first, ok := seen[name]; ok {
		return fmt.Errorf("duplicate directive %q (first at line %d)", name, first)
	}
	seen[name] = n
	if p.inGroup {
		return p.setGroup(name, value)
	}
	return p.setGlobal(name, value)
}

func (p *configParser) startGroup(n int, line string) error {
	// The group before ends here, whatever this header holds.
	p.endGroup()
	p.inGroup = true
	p.group = GroupConfig{Line: n}
	p.seen = map[string]int{}
	name, err := p.groupName(line)
	if err != nil {
		// Its directives are still read, so they are not taken for
		// globals, but the group is not checked or kept.
		p.broken = true
		return err
	}
	p.headers[name] = n
	p.group.Name = name
	return nil
}

// groupName returns the name in a [Name] header.
func (p *configParser) groupName(line string) (string, error) {
	end := strings.LastIndexByte(line, ']')
	if end < 0 {
		return "", fmt.Errorf("unterminated group header %q: expected [Name]", line)
	}
	if rest := trimSpace(line[end+1:]); rest != "" {
		return "", fmt.Errorf("unexpected %q after group header", rest)
	}
	name := trimSpace(line[1:end])
	if err := checkGroupName(name); err != nil {
		return "", err
	}
	if first, ok := p.headers[name]; ok {
		return "", fmt.Errorf("duplicate group %q (first at line %d)", name, first)
	}
	return name, nil
}

// endGroup checks the group just read and adds it to the config, or records
// each of its errors: one about a directive that does not fit the group
// points at that directive's line, everything else at the header. The key
// pair is loaded only for a group with no other error.
func (p *configParser) endGroup() {
	if !p.inGroup {
		return
	}
	defer func() { p.inGroup, p.broken = false, false }()
	if p.broken {
		return
	}
	g := &p.group
	before := len(p.errs)
	add := func(err error) {
		var ce *ConfigError
		switch {
		case err == nil:
		case errors.As(err, &ce):
			p.errs.add(ce)
		default:
			p.errs.add(&ConfigError{File: p.cfg.File, Line: g.Line, Err: err})
		}
	}
	fail := func(line int, format string, args ...any) {
		add(&ConfigError{File: p.cfg.File, Line: line, Err: fmt.Errorf(format, args...)})
	}
	if g.Mode != "" && g.Mode != ModeHTTPS {
		for _, d := range []string{"key", "cert"} {
			if line, ok := p.seen[d]; ok {
				fail(line, "%s applies only to https groups; group %q is %s", d, g.Name, g.Mode)
			}
		}
	}
	for _, d := range []string{"chmod", "owner"} {
		if line, ok := p.seen[d]; ok && g.Network == "tcp" {
			fail(line, "%s applies only to unix sockets; group %q listens on tcp", d, g.Name)
		}
	}
	add(p.endGroupServing())
	add(p.checkOpsGroup())
	if len(p.errs) == before {
		// With a directive that does not fit, the group's own checks
		// would mostly repeat it.
		if err := g.validate(); err != nil {
			add(&ConfigError{File: p.cfg.File, Line: g.Line, Err: err})
		}
	}
	if len(p.errs) == before && g.Mode == ModeHTTPS {
		add(p.loadKeyPair())
	}
	if len(p.errs) == before {
		p.cfg.Groups = append(p.cfg.Groups, *g)
	}
}

// loadKeyPair reads the current group's key and cert so that a missing file or
// a mismatched pair is reported against the config line, not at serve time.
func (p *configParser) loadKeyPair() error {
	g := &p.group
	keyPEM, err := readRegularFile(g.Key)
	if err != nil {
		return &ConfigError{File: p.cfg.File, Line: p.seen["key"], Err: fmt.Errorf("reading key: %w", err)}
	}
	certPEM, err := readRegularFile(g.Cert)
	if err != nil {
		return &ConfigError{File: p.cfg.File, Line: p.seen["cert"], Err: fmt.Errorf("reading cert: %w", err)}
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return &ConfigError{File: p.cfg.File, Line: p.seen["cert"],
			Err: fmt.Errorf("bad key pair (key %s, cert %s): %w", g.Key, g.Cert, err)}
	}
	return nil
}

// readRegularFile reads a key or cert file. It refuses anything but a regular
// file, so that a path such as /dev/stdin or a FIFO cannot hang the parse.
func readRegularFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return os.ReadFile(path)
}

func (p *configParser) setGroup(name, value string) error {
	g := &p.group
	switch name {
	case "mode":
		if !Mode(value).valid() {
			return unknownMode(value)
		}
		g.Mode = Mode(value)
	case "listen":
		network, addr, err := parseListen(value, p.dir)
		if err != nil {
			return err
		}
		g.Network, g.Address = network, addr
	case "key":
		g.Key = p.path(value)
	case "cert":
		g.Cert = p.path(value)
	case "chmod":
		mode, err := strconv.ParseUint(value, 8, 32)
		if err != nil || mode > 0o777 {
			return fmt.Errorf("bad chmod %q: use an octal mode up to 0777, such as 0660", value)
		}
		if mode == 0 {
			return fmt.Errorf("chmod 0 would leave the socket unusable; leave chmod out to keep the mode it is created with")
		}
		g.Chmod = os.FileMode(mode)
	case "protocols":
		protos, err := parseProtocols(value)
		if err != nil {
			return err
		}
		g.Protocols = protos
	case "client_ca":
		g.ClientCA = p.path(value)
	case "owner":
		// Looked up now, so that a typo is reported at its line.
		uid, gid, err := lookupOwner(value)
		if err != nil {
			return err
		}
		g.Owner, g.owner = value, &ownerIDs{uid, gid}
	default:
		return p.setOpsGroup(name, value)
	}
	return nil
}

// splitOwner splits an owner value, "user:group", "user" or ":group", into
// its parts; a part not given is "".
func splitOwner(owner string) (user, group string, err error) {
	user, group, colon := strings.Cut(owner, ":")
	if user == "" && group == "" || colon && group == "" || strings.Contains(group, ":") {
		return "", "", fmt.Errorf("bad owner %q: use user:group, user or :group", owner)
	}
	return user, group, nil
}

// lookupOwner returns the uid and gid an owner value names, -1 for a part
// it does not give; "" gives neither. Names are looked up, digits are ids.
func lookupOwner(owner string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner == "" {
		return uid, gid, nil
	}
	userName, groupName, err := splitOwner(owner)
	if err != nil {
		return -1, -1, err
	}
	if userName != "" {
		if uid, err = lookupID("user", userName); err != nil {
			return -1, -1, err
		}
	}
	if groupName != "" {
		if gid, err = lookupID("group", groupName); err != nil {
			return -1, -1, err
		}
	}
	return uid, gid, nil
}

// lookupID returns the id of a user or group (kind), given by name or as
// digits.
func lookupID(kind, name string) (int, error) {
	id := name
	if !isDigits(name) {
		var err error
		if kind == "user" {
			var u *user.User
			if u, err = user.Lookup(name); err == nil {
				id = u.Uid
			}
		} else {
			var g *user.Group
			if g, err = user.LookupGroup(name); err == nil {
				id = g.Gid
			}
		}
		if errors.As(err, new(user.UnknownUserError)) || errors.As(err, new(user.UnknownGroupError)) {
			return -1, fmt.Errorf("unknown %s %q", kind, name)
		}
		if err != nil {
			return -1, fmt.Errorf("looking up %s %q: %w", kind, name, err)
		}
	}
	n, err := strconv.ParseUint(id, 10, 32)
	if err != nil || n == 1<<32-1 {
		return -1, fmt.Errorf("bad %s id %q", kind, id)
	}
	return int(n), nil
}

func (p *configParser) setGlobal(name, value string) error {
	c := p.cfg
	switch name {
	case "pidfile":
		c.PidFile = p.path(value)
	case "logfile":
		c.LogFile = p.path(value)
	case "drain_timeout":
		d, err := parseDuration(value)
		if err != nil {
			return err
		}
		if d == 0 {
			return fmt.Errorf("drain_timeout must be greater than 0: 0 would cut every connection at once")
		}
		c.DrainTimeout = d
	case "ready_timeout":
		d, err := parseDuration(value)
		if err != nil {
			return err
		}
		if d == 0 {
			return fmt.Errorf("ready_timeout must be greater than 0: 0 would fail every start")
		}
		c.ReadyTimeout = d
	case "maxfds":
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil || n == 0 {
			return fmt.Errorf("bad maxfds %q: use a positive integer", value)
		}
		c.MaxFDs = n
	case "user":
		if !isDigits(value) {
			if _, err := user.Lookup(value); err != nil {
				if errors.As(err, new(user.UnknownUserError)) {
					return fmt.Errorf("unknown user %q", value)
				}
				return fmt.Errorf("looking up user %q: %w", value, err)
			}
		} else if _, err := strconv.ParseUint(value, 10, 32); err != nil {
			return fmt.Errorf("bad user id %q", value)
		}
		c.User = value
	case "group":
		if !isDigits(value) {
			if _, err := user.LookupGroup(value); err != nil {
				if errors.As(err, new(user.UnknownGroupError)) {
					return fmt.Errorf("unknown group %q", value)
				}
				return fmt.Errorf("looking up group %q: %w", value, err)
			}
		} else if _, err := strconv.ParseUint(value, 10, 32); err != nil {
			return fmt.Errorf("bad group id %q", value)
		}
		c.UserGroup = value
	default:
		return p.setOpsGlobal(name, value)
	}
	return nil
}

func (p *configParser) path(v string) string { return resolvePath(p.dir, v) }

// resolvePath makes a path from the file absolute against dir, the file's
// directory, or against the working directory when dir is "".
func resolvePath(dir, v string) string {
	switch {
	case filepath.IsAbs(v):
		return filepath.Clean(v)
	case dir != "":
		return filepath.Join(dir, v)
	}
	if abs, err := filepath.Abs(v); err == nil {
		return abs
	}
	return filepath.Clean(v)
}

const listenForms = "use host:port, :port, port, [ipv6]:port, /path/to.sock or unix:path"

// parseListen turns a listen value into a network and a normalized address.
func parseListen(v, dir string) (network, address string, err error) {
	if rest, ok := strings.CutPrefix(v, "unix:"); ok || strings.Contains(v, "/") {
		if !ok {
			rest = v
		}
		if rest == "" {
			return "", "", fmt.Errorf("empty unix socket path: %s", listenForms)
		}
		p := resolvePath(dir, rest)
		if err := checkUnixPath(p); err != nil {
			return "", "", err
		}
		return "unix", p, nil
	}
	if isDigits(v) {
		port, err := parsePort(v)
		if err != nil {
			return "", "", err
		}
		return "tcp", ":" + port, nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", "", fmt.Errorf("bad listen address %q: %s", v, listenForms)
	}
	if port, err = parsePort(port); err != nil {
		return "", "", err
	}
	if host, err = normalizeHost(host); err != nil {
		return "", "", err
	}
	return "tcp", net.JoinHostPort(host, port), nil
}

// parsePort returns the port without leading zeros, so that "09000" and
// "9000" compare equal.
func parsePort(s string) (string, error) {
	if !isDigits(s) {
		return "", fmt.Errorf("bad port %q: use a number from 0 to 65535", s)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return "", fmt.Errorf("bad port %q: use a number from 0 to 65535", s)
	}
	return strconv.FormatUint(n, 10), nil
}

// normalizeHost writes IP addresses in their canonical form and host names in
// lower case, so that two spellings of one address are seen as one.
func normalizeHost(h string) (string, error) {
	if h == "" {
		return "", nil
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.String(), nil
	}
	if len(h) > 253 {
		return "", fmt.Errorf("bad host %q: longer than 253 bytes", h)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !isAlnum(c) && c != '-' && c != '.' && c != '_' {
			return "", fmt.Errorf("bad host %q: use an IP address or a host name", h)
		}
	}
	return strings.ToLower(h), nil
}

func checkTCPAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad tcp address %q: %w", addr, err)
	}
	_, err = parsePort(port)
	return err
}

func checkUnixPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty unix socket path")
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("unix socket path %q contains a NUL byte", p)
	}
	if len(p) > maxUnixPath {
		return fmt.Errorf("unix socket path %q is %d bytes; at most %d fit", p, len(p), maxUnixPath)
	}
	return nil
}

func checkGroupName(name string) error {
	if name == "" {
		return fmt.Errorf("empty group name: expected [Name]")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return fmt.Errorf("bad group name %q: use letters, digits, '_', '-' and '.'", name)
		}
	}
	return nil
}

func unknownMode(m string) error {
	return fmt.Errorf("unknown mode %q: use tcp, http, https, fcgi or udp", m)
}

func parseDuration(v string) (time.Duration, error) {
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(1<<63-1)/int64(time.Second) {
			return 0, fmt.Errorf("bad duration %q: too long", v)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: use seconds (30) or a Go duration (30s, 1m30s)", v)
	}
	if d < 0 {
		return 0, fmt.Errorf("bad duration %q: must be positive", v)
	}
	return d, nil
}

// stripComment cuts a '#' comment that starts the line or follows a space, so
// that a '#' inside a value such as a path is kept.
func stripComment(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || isSpace(s[i-1])) {
			return s[:i]
		}
	}
	return s
}

func splitFields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r < 0x80 && isSpace(byte(r)) })
}

func trimSpace(s string) string { return strings.Trim(s, " \t\r\v\f") }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

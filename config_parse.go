package gozd

// The config file parser: directives line by line, groups checked as they
// end, every error kept with its line (up to maxConfigErrors).

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"
)

func atLine(line int) string {
	if line <= 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", line)
}

var (
	globalDirectives = map[string]bool{
		"pidfile": true, "logfile": true, "drain_timeout": true, "ready_timeout": true,
		"user": true, "group": true, "maxfds": true, "start_boost": true,
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
	_, err = tls.X509KeyPair(certPEM, keyPEM)
	// Checked, then dropped: the master (which parses every reload's
	// config) keeps no key, and the key's text does not linger in its
	// freed memory until reused. The parsed key is garbage now; the
	// master's trim after a reload returns its pages (memory.go).
	clear(keyPEM)
	if err != nil {
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
	case "start_boost":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > maxStartBoost {
			return fmt.Errorf("bad start_boost %q: use 0 (off) to %d nice levels", value, maxStartBoost)
		}
		c.StartBoost = n
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

package gozd

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
)

// The values of the protocols directive of http and https groups.
const (
	ProtoHTTP1 = "http1" // HTTP/1.x
	ProtoH2    = "h2"    // HTTP/2 over TLS (ALPN): https only
	ProtoH2C   = "h2c"   // HTTP/2 without TLS, with prior knowledge: http only
)

// parseProtocols reads the value of a protocols directive: names separated
// by spaces or commas.
func parseProtocols(v string) ([]string, error) {
	var protos []string
	for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		switch p {
		case ProtoHTTP1, ProtoH2, ProtoH2C:
		default:
			return nil, fmt.Errorf("unknown protocol %q: use http1, h2 (https) or h2c (http)", p)
		}
		protos = append(protos, p)
	}
	if len(protos) == 0 {
		return nil, fmt.Errorf("protocols needs at least one of http1, h2, h2c")
	}
	return protos, nil
}

// validateServing checks what a group's mode says about its other settings:
// protocols, client_ca and a udp group's network.
func (g *GroupConfig) validateServing() error {
	if g.Mode == ModeUDP && g.Network != "udp" {
		return fmt.Errorf("udp group %q needs a host:port to listen on, not %s %s: unix sockets are stream sockets", g.Name, g.Network, g.Address)
	}
	if g.Mode != ModeUDP && g.Network == "udp" {
		return fmt.Errorf("group %q: network udp needs mode udp, not %s", g.Name, g.Mode)
	}
	if len(g.Protocols) > 0 {
		if g.Mode != ModeHTTP && g.Mode != ModeHTTPS {
			return fmt.Errorf("group %q: protocols applies only to http and https groups, not %s", g.Name, g.Mode)
		}
		for _, p := range g.Protocols {
			switch {
			case p == ProtoH2C && g.Mode == ModeHTTPS:
				return fmt.Errorf("https group %q: h2c is HTTP/2 without TLS; an https group speaks h2", g.Name)
			case p == ProtoH2 && g.Mode == ModeHTTP:
				return fmt.Errorf("http group %q: h2 needs TLS; an http group speaks HTTP/2 as h2c", g.Name)
			case p != ProtoHTTP1 && p != ProtoH2 && p != ProtoH2C:
				return fmt.Errorf("group %q: unknown protocol %q", g.Name, p)
			}
		}
	}
	if g.ClientCA != "" && g.Mode != ModeHTTPS {
		return fmt.Errorf("group %q: client_ca applies only to https groups, not %s", g.Name, g.Mode)
	}
	return nil
}

// httpProtocols is the Protocols the group's protocols directive asks for,
// or nil when the config sets none.
func (g *GroupConfig) httpProtocols() *http.Protocols {
	if len(g.Protocols) == 0 {
		return nil
	}
	p := new(http.Protocols)
	for _, name := range g.Protocols {
		switch name {
		case ProtoHTTP1:
			p.SetHTTP1(true)
		case ProtoH2:
			p.SetHTTP2(true)
		case ProtoH2C:
			p.SetUnencryptedHTTP2(true)
		}
	}
	return p
}

// loadClientCAs reads a PEM file of CA certificates.
func loadClientCAs(path string) (*x509.CertPool, error) {
	b, err := readRegularFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// applyClientCA makes c require a client certificate signed by one of the
// group's client_ca certificates, read afresh: a worker started by a reload
// follows a replaced file.
func (g *GroupConfig) applyClientCA(c *tls.Config) error {
	if g.ClientCA == "" {
		return nil
	}
	pool, err := loadClientCAs(g.ClientCA)
	if err != nil {
		return fmt.Errorf("%s: client_ca: %w", g, err)
	}
	c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	return nil
}

// h2Preface starts every HTTP/2 connection.
const h2Preface = "PRI * HTTP/2.0"

// prefaceDecided is httpConn.seen once the first bytes said whether the
// connection speaks h2c.
const prefaceDecided = len(h2Preface) + 1

// noteFirstRead marks a connection whose first bytes are the HTTP/2 preface:
// HTTP/2 without TLS (protocols h2c), which net/http hands to its HTTP/2
// server with nothing else to tell it by. It drains as HTTP/2 over TLS does,
// and never moves to another worker as HTTP/1.x would. The preface may come
// in pieces (a proxy, small segments): b is matched on from where the last
// read left off. net/http reads a connection from one goroutine at a time.
func (c *httpConn) noteFirstRead(b []byte) {
	for _, x := range b {
		if x != h2Preface[c.seen] {
			c.seen = prefaceDecided
			return
		}
		c.seen++
		if c.seen == len(h2Preface) {
			c.h2c.Store(true)
			c.seen = prefaceDecided
			return
		}
	}
}

// endGroupServing checks the current group's udp listen address, protocols
// and client_ca against its mode, and reads client_ca, so that a mistake is
// reported at the line of the directive that makes it.
func (p *configParser) endGroupServing() error {
	g := &p.group
	fail := func(line int, format string, args ...any) error {
		return &ConfigError{File: p.cfg.File, Line: line, Err: fmt.Errorf(format, args...)}
	}
	if g.Mode == ModeUDP {
		switch g.Network {
		case "tcp":
			g.Network = "udp"
		case "unix":
			return fail(p.seen["listen"], "udp group %q needs host:port: %s is a unix socket path, and gozd's unix sockets are stream sockets", g.Name, g.Address)
		}
	}
	if line, ok := p.seen["protocols"]; ok && g.Mode != "" {
		only := GroupConfig{Name: g.Name, Mode: g.Mode, Network: g.Network, Protocols: g.Protocols}
		if err := only.validateServing(); err != nil {
			return fail(line, "%v", err)
		}
	}
	if line, ok := p.seen["client_ca"]; ok && g.Mode != "" {
		if g.Mode != ModeHTTPS {
			return fail(line, "client_ca applies only to https groups; group %q is %s", g.Name, g.Mode)
		}
		if _, err := loadClientCAs(g.ClientCA); err != nil {
			return fail(line, "client_ca: %w", err)
		}
	}
	return nil
}

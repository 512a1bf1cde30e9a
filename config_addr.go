package gozd

// Addresses and paths in a config: listen values in their accepted forms,
// normalised so that equal addresses compare equal, and the overlaps that
// cannot both bind.

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// maxUnixPath is the longest unix socket path that fits in sockaddr_un.sun_path
// (108 bytes on Linux) with its terminating NUL.
const maxUnixPath = 107

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

package gozd

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gozd/gozd/internal/testcert"
)

// TestParseServing: protocols, client_ca and udp groups as the parser reads
// them.
func TestParseServing(t *testing.T) {
	dir := configFixtures(t)
	ca, err := testcert.NewCA("clients", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := parseIn(dir, `[plain]
mode http
listen 127.0.0.1:80
protocols http1 h2c
[secure]
mode https
listen 127.0.0.1:443
key key.pem
cert cert.pem
protocols [http1,h2]
client_ca ca.pem
[dns]
mode udp
listen 127.0.0.1:80
[dns6]
mode udp
listen [::1]:0
[dns6b]
mode udp
listen [::1]:0
`)
	if err != nil {
		t.Fatal(err)
	}
	g := func(name string) *GroupConfig { g, _ := c.Group(name); return g }
	if p := g("plain").Protocols; !slices.Equal(p, []string{"http1", "h2c"}) {
		t.Errorf("plain protocols %q", p)
	}
	if p := g("secure").Protocols; !slices.Equal(p, []string{"http1", "h2"}) {
		t.Errorf("secure protocols %q", p)
	}
	if ca := g("secure").ClientCA; ca != filepath.Join(dir, "ca.pem") {
		t.Errorf("client_ca %q", ca)
	}
	if dns := g("dns"); dns.Network != "udp" || dns.Address != "127.0.0.1:80" {
		t.Errorf("udp group: %s %s (udp and tcp may share a port number)", dns.Network, dns.Address)
	}
	if p := g("plain").httpProtocols(); !p.HTTP1() || !p.UnencryptedHTTP2() || p.HTTP2() {
		t.Errorf("plain: %v", p)
	}
}

// TestParseServingErrors: every misplaced protocols, client_ca or udp
// setting is refused at the line that makes it.
func TestParseServingErrors(t *testing.T) {
	dir := configFixtures(t)
	file := filepath.Join(dir, "app.conf")
	https := "[a]\nmode https\nlisten 443\nkey key.pem\ncert cert.pem\n"
	for _, tt := range []struct {
		name string
		text string
		line int
		word string
	}{
		{"h2c on https", https + "protocols http1 h2c\n", 6, `https group "a": h2c is HTTP/2 without TLS`},
		{"h2 on http", "[a]\nmode http\nlisten 80\nprotocols h2\n", 4, "h2 needs TLS"},
		{"protocols on tcp", "[a]\nmode tcp\nprotocols http1\nlisten 80\n", 3, "protocols applies only to http and https"},
		{"unknown protocol", "[a]\nmode http\nlisten 80\nprotocols http3\n", 4, `unknown protocol "http3"`},
		{"empty protocols", "[a]\nmode http\nlisten 80\nprotocols ,\n", 4, "at least one"},
		{"client_ca on http", "[a]\nmode http\nlisten 80\nclient_ca cert.pem\n", 4, `client_ca applies only to https groups; group "a" is http`},
		{"client_ca missing", https + "client_ca missing.pem\n", 6, "missing.pem"},
		{"client_ca not pem", https + "client_ca garbage.pem\n", 6, "no PEM certificate"},
		{"udp on a unix path", "[a]\nmode udp\nlisten /tmp/a.sock\n", 3, `udp group "a" needs host:port`},
		{"udp chmod", "[a]\nmode udp\nlisten 53\nchmod 0660\n", 4, "only to unix sockets"},
		{"two udp groups", "[a]\nmode udp\nlisten 53\n[b]\nmode udp\nlisten :053\n", 4, "both listen"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseIn(dir, tt.text)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, %+v; want a *ConfigError", err, c)
			}
			if ce.File != file || ce.Line != tt.line || !strings.Contains(err.Error(), tt.word) {
				t.Errorf("error %q at line %d; want line %d with %q", err, ce.Line, tt.line, tt.word)
			}
		})
	}
	// Built in code, Validate says the same without a line.
	for _, g := range []GroupConfig{
		{Name: "a", Mode: ModeHTTPS, Network: "tcp", Address: ":443", Key: "k", Cert: "c", Protocols: []string{"h2c"}},
		{Name: "a", Mode: ModeHTTP, Network: "tcp", Address: ":80", ClientCA: "ca.pem"},
		{Name: "a", Mode: ModeUDP, Network: "unix", Address: "/tmp/a.sock"},
		{Name: "a", Mode: ModeUDP, Network: "tcp", Address: ":53"},
		{Name: "a", Mode: ModeTCP, Network: "udp", Address: ":53"},
	} {
		if err := (&Config{Groups: []GroupConfig{g}}).Validate(); err == nil || !strings.Contains(err.Error(), `"a"`) {
			t.Errorf("Validate(%+v) = %v; want an error naming the group", g, err)
		}
	}
}

// TestH2CTracked: a connection that speaks h2c (prior knowledge) is known to
// the drain as HTTP/2, as one over TLS is, whatever the server's settings.
func TestH2CTracked(t *testing.T) {
	t.Run("preface in one read", func(t *testing.T) { testH2CTracked(t, nil) })
	// A proxy or small segments may cut the preface: it is matched across
	// reads. Each of its first bytes goes in a segment of its own.
	t.Run("preface in pieces", func(t *testing.T) {
		testH2CTracked(t, func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &dribbleConn{Conn: c, left: len(h2Preface)}, nil
		})
	})
}

// dribbleConn writes its first left bytes one at a time, a moment apart.
type dribbleConn struct {
	net.Conn
	left int
}

func (c *dribbleConn) Write(p []byte) (int, error) {
	n := 0
	for c.left > 0 && n < len(p) {
		if _, err := c.Conn.Write(p[n : n+1]); err != nil {
			return n, err
		}
		n++
		c.left--
		time.Sleep(2 * time.Millisecond)
	}
	m, err := c.Conn.Write(p[n:])
	return n + m, err
}

func testH2CTracked(t *testing.T, dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	cfg := &Config{DrainTimeout: 20 * time.Second, Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0", Protocols: []string{"http1", "h2c"}}}}
	srv := &http.Server{Handler: http.HandlerFunc(hello), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": srv})
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos, DialContext: dial}
	defer tr.CloseIdleConnections()
	resp, body := get(t, &http.Client{Transport: tr, Timeout: serveWait}, "http://"+td.addr(t, "web").String()+"/")
	if resp.ProtoMajor != 2 || body != "hello /" {
		t.Fatalf("%s %q", resp.Proto, body)
	}
	gs := td.group(t, "web")
	gs.tracker.mu.Lock()
	var h2 []bool
	for c := range gs.tracker.conns {
		h2 = append(h2, isHTTP2(c))
	}
	gs.tracker.mu.Unlock()
	if len(h2) != 1 || !h2[0] {
		t.Fatalf("tracked connections, HTTP/2 or not: %v; want one h2c", h2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), serveWait)
	defer cancel()
	if err := td.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

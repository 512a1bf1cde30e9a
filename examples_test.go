package gozd_test

// End-to-end tests of the example programs: each is built, started in the
// foreground on a config written for the test, driven as a user would (tcp,
// http, https, FastCGI directly, through nginx and through cgi-fcgi) and
// stopped with real signals.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gozd/gozd"
)

// exampleDir returns a new short directory for a test's config, keys, pid
// file, unix sockets and nginx files: t.TempDir paths can be too long for a
// unix socket. It is world-readable because nginx workers run as nobody and
// must reach the FastCGI socket inside.
func exampleDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gozd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// example is a running example program.
type example struct {
	*process
	dir     string
	conf    string
	pidfile string
	master  int
	addrs   map[string]string // group → bound address, from the start line
}

// startExample writes a config of body, preceded by a pid file in dir, and
// runs bin on it in the foreground until it prints its start line.
func startExample(t testing.TB, bin, dir, body string) *example {
	t.Helper()
	pidfile := filepath.Join(dir, "gozd.pid")
	conf := writeFile(t, dir, "gozd.conf", "pidfile "+pidfile+"\n"+body)
	p := startProcess(t, bin, "-f", "-c", conf)
	master, addrs := startedAddrs(t, p.waitOutput("gozd: started"))
	if master != p.pid() {
		t.Fatalf("start line names pid %d, the master is %d", master, p.pid())
	}
	return &example{process: p, dir: dir, conf: conf, pidfile: pidfile, master: master, addrs: addrs}
}

// quit stops the example gracefully and checks that it exits 0.
func (e *example) quit(t testing.TB) {
	t.Helper()
	e.signal(syscall.SIGQUIT)
	if code := e.wait(); code != 0 {
		t.Fatalf("exit status %d after SIGQUIT, want 0", code)
	}
}

// The groups of the demo, one per mode; the mixed example serves them all.
const (
	exEchoGroup   = "[echo]\nmode tcp\nlisten 127.0.0.1:0\n"
	exWebGroup    = "[web]\nmode http\nlisten 127.0.0.1:0\n"
	exSecureGroup = "[secure]\nmode https\nlisten 127.0.0.1:0\nkey $DIR/key.pem\ncert $DIR/cert.pem\n"
	exAppGroup    = "[app]\nmode fcgi\nlisten $DIR/fcgi.sock\nchmod 0666\n"
)

// exampleConf fills $DIR in conf and writes a fresh key pair there when the
// config needs one.
func exampleConf(t testing.TB, dir, conf string) string {
	t.Helper()
	if strings.Contains(conf, "cert.pem") {
		writeKeyPair(t, dir)
	}
	return strings.ReplaceAll(conf, "$DIR", dir)
}

// exCheckHello checks a demo response: the version header and the greeting of
// a worker of master.
func exCheckHello(t testing.TB, via string, h http.Header, body string, master int) {
	t.Helper()
	if v := h.Get("X-Gozd-Version"); v != "v1" {
		t.Errorf("%s: X-Gozd-Version %q, want v1", via, v)
	}
	var pid int
	if _, err := fmt.Sscanf(body, "hello from gozd http v1 pid %d\n", &pid); err != nil {
		t.Errorf("%s: body %q is not the demo greeting: %v", via, body, err)
		return
	}
	if !slices.Contains(childPids(master), pid) {
		t.Errorf("%s: answered by pid %d, not a worker of master %d (workers %v)", via, pid, master, childPids(master))
	}
}

// exCheckEcho sends a line to the tcp echo at addr and expects it back.
func exCheckEcho(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("tcp %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	const line = "hello gozd\n"
	if _, err := io.WriteString(c, line); err != nil {
		t.Fatalf("tcp %s: %v", addr, err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != line {
		t.Fatalf("tcp %s: echo %q, %v; want %q", addr, got, err, line)
	}
}

// exHTTPGet gets url with client and returns the response's header and body,
// failing unless the status is 200.
func exHTTPGet(t testing.TB, client *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return resp, string(b)
}

func exCheckHTTP(t testing.TB, e *example, addr string) {
	t.Helper()
	client := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, body := exHTTPGet(t, client, "http://"+addr+"/")
	exCheckHello(t, "http", resp.Header, body, e.master)
}

// exTrustingTLS is a client config that trusts just the certificate at path.
func exTrustingTLS(t testing.TB, certPath string) *tls.Config {
	t.Helper()
	pemBytes, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("no certificate in %s", certPath)
	}
	return &tls.Config{RootCAs: pool}
}

// exCheckHTTPS gets / over TLS verified against certPath and expects HTTP/2.
func exCheckHTTPS(t testing.TB, e *example, addr, certPath string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: exTrustingTLS(t, certPath), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, body := exHTTPGet(t, &http.Client{Timeout: waitTimeout, Transport: tr}, "https://"+addr+"/")
	if resp.ProtoMajor != 2 {
		t.Errorf("https: protocol %s, want HTTP/2", resp.Proto)
	}
	exCheckHello(t, "https", resp.Header, body, e.master)
}

func exCheckFCGI(t testing.TB, e *example, sock string) {
	t.Helper()
	h, body := exFCGIGet(t, sock, "/")
	exCheckHello(t, "fcgi", h, body, e.master)
}

// exFCGIGet makes one FastCGI request, GET path, on the unix socket sock, the
// way a web server does, and returns the CGI response's header and body. It
// lets the fcgi examples be tested where no web server is installed.
func exFCGIGet(t testing.TB, sock, path string) (http.Header, string) {
	t.Helper()
	const (
		typeBeginRequest = 1
		typeEndRequest   = 3
		typeParams       = 4
		typeStdin        = 5
		typeStdout       = 6
		roleResponder    = 1
	)
	var req bytes.Buffer
	record := func(typ byte, content []byte) {
		req.Write([]byte{1, typ, 0, 1, byte(len(content) >> 8), byte(len(content)), 0, 0})
		req.Write(content)
	}
	var params bytes.Buffer
	for _, kv := range [][2]string{
		{"REQUEST_METHOD", "GET"}, {"SERVER_PROTOCOL", "HTTP/1.1"},
		{"REQUEST_URI", path}, {"HTTP_HOST", "localhost"},
	} {
		// Lengths below 128 take one byte each; these are all short.
		params.Write([]byte{byte(len(kv[0])), byte(len(kv[1]))})
		params.WriteString(kv[0] + kv[1])
	}
	record(typeBeginRequest, []byte{0, roleResponder, 0, 0, 0, 0, 0, 0})
	record(typeParams, params.Bytes())
	record(typeParams, nil)
	record(typeStdin, nil)

	c, err := net.DialTimeout("unix", sock, waitTimeout)
	if err != nil {
		t.Fatalf("fcgi %s: %v", sock, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write(req.Bytes()); err != nil {
		t.Fatalf("fcgi %s: %v", sock, err)
	}
	var stdout bytes.Buffer
	for {
		var h [8]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			t.Fatalf("fcgi %s: reading the response: %v", sock, err)
		}
		content := make([]byte, int(h[4])<<8|int(h[5])+int(h[6]))
		if _, err := io.ReadFull(c, content); err != nil {
			t.Fatalf("fcgi %s: reading the response: %v", sock, err)
		}
		if h[1] == typeStdout {
			stdout.Write(content[:int(h[4])<<8|int(h[5])])
		}
		if h[1] == typeEndRequest {
			break
		}
	}
	r := textproto.NewReader(bufio.NewReader(&stdout))
	hdr, err := r.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("fcgi %s: bad response header: %v\n%s", sock, err, stdout.String())
	}
	body, _ := io.ReadAll(r.R)
	return http.Header(hdr), string(body)
}

// TestExampleModes runs each single-mode example on its own and talks to it
// in its mode.
func TestExampleModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pkg   string
		conf  string
		check func(t *testing.T, e *example)
	}{
		{"./examples/tcp", exEchoGroup, func(t *testing.T, e *example) {
			exCheckEcho(t, e.addrs["echo"])
		}},
		{"./examples/http", exWebGroup, func(t *testing.T, e *example) {
			exCheckHTTP(t, e, e.addrs["web"])
		}},
		{"./examples/https", exSecureGroup, func(t *testing.T, e *example) {
			exCheckHTTPS(t, e, e.addrs["secure"], filepath.Join(e.dir, "cert.pem"))
		}},
		{"./examples/fcgi", exAppGroup, func(t *testing.T, e *example) {
			exCheckFCGI(t, e, filepath.Join(e.dir, "fcgi.sock"))
		}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.pkg), func(t *testing.T) {
			t.Parallel()
			bin := buildBinary(t, tt.pkg, "v1")
			dir := exampleDir(t)
			e := startExample(t, bin, dir, "drain_timeout 20s\n"+exampleConf(t, dir, tt.conf))
			if len(e.addrs) != 1 {
				t.Fatalf("start line names %d groups, want 1: %v", len(e.addrs), e.addrs)
			}
			tt.check(t, e)
			e.quit(t)
		})
	}
}

// TestExampleMixed runs the mixed example, all four modes from one config.
func TestExampleMixed(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t, "./examples/mixed", "v1")
	dir := exampleDir(t)
	e := startExample(t, bin, dir, exampleConf(t, dir, "drain_timeout 20s\n"+exEchoGroup+exWebGroup+exSecureGroup+exAppGroup))
	for _, g := range []string{"echo", "web", "secure", "app"} {
		if e.addrs[g] == "" {
			t.Fatalf("start line names no address for group %s: %v", g, e.addrs)
		}
	}
	sock := filepath.Join(dir, "fcgi.sock")
	if e.addrs["app"] != sock {
		t.Errorf("group app on %s, want %s", e.addrs["app"], sock)
	}
	exCheckEcho(t, e.addrs["echo"])
	exCheckHTTP(t, e, e.addrs["web"])
	exCheckHTTPS(t, e, e.addrs["secure"], filepath.Join(dir, "cert.pem"))
	exCheckFCGI(t, e, sock)
	t.Run("nginx", func(t *testing.T) {
		n := exStartNginx(t, dir, sock, false)
		resp, body := exHTTPGet(t, n.client, n.url)
		exCheckHello(t, "fcgi via nginx", resp.Header, body, e.master)
	})
	e.quit(t)
}

// TestExampleCommittedConfs keeps the README's commands working: every
// committed example config parses, and the mixed example serves on
// examples/mixed.conf as it stands (skipped when its fixed ports are taken).
func TestExampleCommittedConfs(t *testing.T) {
	t.Parallel()
	confs, err := filepath.Glob("examples/*.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(confs) < 5 {
		t.Fatalf("found %d example configs (%v), want one per example", len(confs), confs)
	}
	for _, c := range confs {
		cfg, err := gozd.LoadConfig(c)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if len(cfg.Groups) == 0 {
			t.Errorf("%s: no groups", c)
		}
	}

	t.Run("mixed.conf", func(t *testing.T) {
		const conf = "examples/mixed.conf"
		cfg, err := gozd.LoadConfig(conf)
		if err != nil {
			t.Fatal(err)
		}
		var sock string
		for _, g := range cfg.Groups {
			if g.Network == "unix" {
				sock = g.Address
				if c, err := net.Dial("unix", sock); err == nil {
					c.Close()
					t.Skipf("%s: %s is served by another process", conf, sock)
				}
				continue
			}
			ln, err := net.Listen("tcp", g.Address)
			if err != nil {
				t.Skipf("%s: %s is busy: %v", conf, g.Address, err)
			}
			ln.Close()
		}
		bin := buildBinary(t, "./examples/mixed", "v1")
		p := startProcess(t, bin, "-f", "-c", conf)
		// Another program may take a port between the check and the
		// start: that is a busy machine, not a failure.
		deadline := time.After(waitTimeout)
		var line string
		for {
			if l, ok := p.out.line("gozd: started"); ok {
				line = l
				break
			}
			select {
			case <-p.done:
				out := p.out.String()
				if strings.Contains(out, "address already in use") || strings.Contains(out, "already running") ||
					strings.Contains(out, gozd.ErrSocketInUse.Error()) {
					t.Skipf("%s: an address is busy:\n%s", conf, out)
				}
				t.Fatalf("%s: exited before serving:\n%s", conf, out)
			case <-deadline:
				t.Fatalf("%s: not serving after %s", conf, waitTimeout)
			case <-time.After(10 * time.Millisecond):
			}
		}
		master, addrs := startedAddrs(t, line)
		e := &example{process: p, master: master, addrs: addrs}
		for _, g := range cfg.Groups {
			if g.Network == "tcp" && addrs[g.Name] != g.Address {
				t.Errorf("group %s on %s, want %s", g.Name, addrs[g.Name], g.Address)
			}
		}
		exCheckEcho(t, addrs["echo"])
		exCheckHTTP(t, e, addrs["web"])
		exCheckHTTPS(t, e, addrs["secure"], "examples/tls/localhost-cert.pem")
		exCheckFCGI(t, e, sock)
		e.quit(t)
		if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket %s left after quit: %v", sock, err)
		}
	})
}

// TestExampleConfigErrors starts an example on broken configs: it must say
// where the problem is, exit non-zero and leave nothing behind.
func TestExampleConfigErrors(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t, "./examples/http", "v1")
	// In each config, line 1 is the pid file and $ADDR a fixed port that
	// must be free again once the program has exited.
	tests := []struct {
		name string
		conf string
		line int
		want string
	}{
		{"unknown directive", "pidfile $DIR/gozd.pid\n[web]\nmode http\nlisten $ADDR\ncolour blue\n", 5, `unknown directive "colour"`},
		{"unknown mode", "pidfile $DIR/gozd.pid\n[web]\nmode gopher\nlisten $ADDR\n", 3, `unknown mode "gopher"`},
		{"missing listen", "pidfile $DIR/gozd.pid\n\n[web]\nmode http\n", 3, `group "web" has no listen address`},
		{"duplicate group", "pidfile $DIR/gozd.pid\n[web]\nmode http\nlisten $ADDR\n\n[web]\nmode http\nlisten 127.0.0.1:0\n", 6, `duplicate group "web"`},
		{"two groups on one address", "pidfile $DIR/gozd.pid\n[web]\nmode http\nlisten $ADDR\n[web2]\nmode http\nlisten $ADDR\n", 5, "both listen on"},
		{"https without cert", "pidfile $DIR/gozd.pid\n[web]\nmode https\nlisten $ADDR\nkey $DIR/key.pem\n", 2, "needs a cert"},
		{"missing key file", "pidfile $DIR/gozd.pid\n[web]\nmode https\nlisten $ADDR\nkey $DIR/nokey.pem\ncert $DIR/cert.pem\n", 5, "reading key"},
		{"key is a directory", "pidfile $DIR/gozd.pid\n[web]\nmode https\nlisten $ADDR\nkey $DIR\ncert $DIR/cert.pem\n", 5, "not a regular file"},
		{"bad duration", "pidfile $DIR/gozd.pid\ndrain_timeout 10x\n[web]\nmode http\nlisten $ADDR\n", 2, `bad duration "10x"`},
		{"garbage line", "pidfile $DIR/gozd.pid\n[web]\nmode http\n%%% ?\nlisten $ADDR\n", 4, "unknown directive"},
		{"unterminated header", "pidfile $DIR/gozd.pid\n[web\nmode http\nlisten $ADDR\n", 2, "unterminated group header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := exampleDir(t)
			writeKeyPair(t, dir)
			addr := freePort(t)
			conf := writeFile(t, dir, "gozd.conf", strings.NewReplacer("$DIR", dir, "$ADDR", addr).Replace(tt.conf))
			p := startProcess(t, bin, "-f", "-c", conf)
			if code := p.wait(); code == 0 {
				t.Fatalf("exit status 0 on a broken config; output:\n%s", p.out.String())
			}
			out := p.out.String()
			if where := fmt.Sprintf("%s:%d: ", conf, tt.line); !strings.Contains(out, where) {
				t.Errorf("output does not name %q:\n%s", where, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output does not say %q:\n%s", tt.want, out)
			}
			if strings.Contains(out, "gozd: started") {
				t.Errorf("started on a broken config:\n%s", out)
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("%s still taken after the failed start: %v", addr, err)
			}
			ln.Close()
			if _, err := os.Stat(filepath.Join(dir, "gozd.pid")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pid file left after the failed start: %v", err)
			}
		})
	}
}

// TestExampleBusyAddress starts an example on an address another program
// holds: the error names the group and the address.
func TestExampleBusyAddress(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t, "./examples/mixed", "v1")
	tests := []struct {
		name  string
		group string
		hold  func(t *testing.T, dir string) (net.Listener, string)
	}{
		{"tcp", "web", func(t *testing.T, dir string) (net.Listener, string) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			return ln, ln.Addr().String()
		}},
		{"unix", "app", func(t *testing.T, dir string) (net.Listener, string) {
			sock := filepath.Join(dir, "fcgi.sock")
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			return ln, sock
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := exampleDir(t)
			ln, addr := tt.hold(t, dir)
			defer ln.Close()
			web := exWebGroup
			if tt.group == "web" {
				web = "[web]\nmode http\nlisten " + addr + "\n"
			}
			conf := exampleConf(t, dir, "drain_timeout 20s\n"+exEchoGroup+web+exSecureGroup+exAppGroup)
			pidfile := filepath.Join(dir, "gozd.pid")
			confPath := writeFile(t, dir, "gozd.conf", "pidfile "+pidfile+"\n"+conf)
			p := startProcess(t, bin, "-f", "-c", confPath)
			if code := p.wait(); code == 0 {
				t.Fatalf("exit status 0 with %s busy; output:\n%s", addr, p.out.String())
			}
			out := p.out.String()
			for _, want := range []string{fmt.Sprintf("group %q", tt.group), addr} {
				if !strings.Contains(out, want) {
					t.Errorf("output does not name %s:\n%s", want, out)
				}
			}
			if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pid file left after the failed start: %v", err)
			}
			// The holder still has its address: a failed start must not
			// remove another program's socket.
			c, err := net.DialTimeout(ln.Addr().Network(), addr, waitTimeout)
			if err != nil {
				t.Fatalf("%s no longer reaches its holder: %v", addr, err)
			}
			c.Close()
		})
	}
}

// TestExampleUsage checks the command-line errors: exit status 2 and usage.
func TestExampleUsage(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t, "./examples/http", "v1")
	dir := exampleDir(t)
	conf := writeFile(t, dir, "gozd.conf", "pidfile "+dir+"/gozd.pid\n"+exWebGroup)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown -s word", []string{"-s", "restart", "-c", conf}, `unknown -s command "restart"`},
		{"missing -c", []string{"-f"}, "-c FILE"},
		{"unknown flag", []string{"-x", "-c", conf}, "-x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := startProcess(t, bin, tt.args...)
			if code := p.wait(); code != gozd.ExitUsage {
				t.Errorf("exit status %d, want %d", code, gozd.ExitUsage)
			}
			out := p.out.String()
			for _, want := range []string{tt.want, "Usage", "-s signal"} {
				if !strings.Contains(out, want) {
					t.Errorf("output does not say %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestExampleSignals stops the mixed example in the foreground with each
// stopping signal while a slow request is in flight: SIGQUIT and SIGTERM let
// it finish and refuse new connections meanwhile, SIGINT cuts it. Either way
// the master exits 0 and leaves no worker, socket or pid file behind.
func TestExampleSignals(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t, "./examples/mixed", "v1")
	tests := []struct {
		sig      syscall.Signal
		graceful bool
	}{
		{syscall.SIGQUIT, true},
		{syscall.SIGTERM, true},
		{syscall.SIGINT, false},
	}
	for _, tt := range tests {
		t.Run(tt.sig.String(), func(t *testing.T) {
			t.Parallel()
			dir := exampleDir(t)
			e := startExample(t, bin, dir, exampleConf(t, dir, "drain_timeout 40s\n"+exEchoGroup+exWebGroup+exSecureGroup+exAppGroup))
			sock := filepath.Join(dir, "fcgi.sock")
			workers := childPids(e.master)
			if len(workers) == 0 {
				t.Fatal("no worker running")
			}

			// Over TLS, a finished handshake proves that the worker has
			// accepted the connection, so the slow request cannot be lost
			// in the listen backlog when the drain begins: the test knows
			// it is in flight without sleeping. HTTP/1.1 keeps it simple.
			sleep := "2s"
			if !tt.graceful {
				sleep = "30s"
			}
			cfg := exTrustingTLS(t, filepath.Join(dir, "cert.pem"))
			cfg.NextProtos = []string{"http/1.1"}
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", e.addrs["secure"], cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(waitTimeout))
			if _, err := fmt.Fprintf(conn, "GET /sleep?d=%s HTTP/1.1\r\nHost: localhost\r\n\r\n", sleep); err != nil {
				t.Fatal(err)
			}
			type result struct {
				resp *http.Response
				body string
				err  error
			}
			var answered atomic.Bool
			done := make(chan result, 1)
			go func() {
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				answered.Store(true)
				done <- result{resp, string(body), err}
			}()

			e.signal(tt.sig)
			if tt.graceful {
				// The listener closes when the drain begins, long
				// before the slow request is answered.
				waitUntil(t, "new connections to be refused", func() bool {
					c, err := net.DialTimeout("tcp", e.addrs["web"], time.Second)
					if err == nil {
						c.Close()
						return false
					}
					return errors.Is(err, syscall.ECONNREFUSED)
				})
				if answered.Load() {
					t.Errorf("new connections were still accepted until the slow request ended")
				}
				r := <-done
				switch {
				case r.err != nil:
					t.Errorf("slow request during %v: %v", tt.sig, r.err)
				case r.resp.StatusCode != http.StatusOK || r.body != "slept 2s v1\n":
					t.Errorf("slow request during %v: %s %q", tt.sig, r.resp.Status, r.body)
				case !r.resp.Close:
					t.Errorf("response during the drain lacks Connection: close")
				}
				if code := e.wait(); code != 0 {
					t.Errorf("exit status %d after %v, want 0", code, tt.sig)
				}
			} else {
				// The bound is far below the 30s sleep: the request was
				// cut, not waited for.
				select {
				case <-e.done:
				case <-time.After(20 * time.Second):
					t.Fatalf("still running 20s after %v", tt.sig)
				}
				if code := e.wait(); code != 0 {
					t.Errorf("exit status %d after %v, want 0", code, tt.sig)
				}
				select {
				case r := <-done:
					if r.err == nil {
						t.Errorf("slow request survived %v: %s %q", tt.sig, r.resp.Status, r.body)
					}
				case <-time.After(waitTimeout):
					t.Fatalf("slow request neither answered nor cut after %v", tt.sig)
				}
			}

			for _, w := range workers {
				if processAlive(w) {
					t.Errorf("worker %d still alive after the master exited", w)
				}
			}
			for _, f := range []string{sock, e.pidfile, e.pidfile + ".state"} {
				if _, err := os.Lstat(f); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left after %v: %v", f, tt.sig, err)
				}
			}
		})
	}
}

// exNeedTool returns the path of an external program a test drives, or skips
// the test naming the Debian package that has it; in CI it must be there.
func exNeedTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (Debian package %s): %v", name, pkg, err)
	}
	t.Skipf("%s not found; install the Debian package %s", name, pkg)
	return ""
}

// exNginx is a running nginx in front of a FastCGI socket.
type exNginx struct {
	url    string
	client *http.Client
}

// exStartNginx runs nginx in the foreground with its files in dir, passing
// every request to the FastCGI socket sock; with keepConn, over an upstream
// of kept-alive connections. The test's cleanup stops it by pid.
func exStartNginx(t testing.TB, dir, sock string, keepConn bool) *exNginx {
	t.Helper()
	return exStartNginxAt(t, dir, "unix:"+sock, keepConn, false)
}

// exStartNginxAt is exStartNginx for a server at server, in nginx's form
// (unix:PATH or HOST:PORT): a FastCGI one, or with proxyHTTP an HTTP one
// (proxy_pass, HTTP/1.1, and with keepConn upstream keepalive).
func exStartNginxAt(t testing.TB, dir, server string, keepConn, proxyHTTP bool) *exNginx {
	t.Helper()
	bin := exNeedTool(t, "nginx", "nginx")
	addr := freePort(t)
	pass, upstream := server, ""
	if keepConn {
		pass = "gozd"
		upstream = "upstream gozd { server " + server + "; keepalive 4; }"
	}
	keep := ""
	if keepConn {
		keep = "fastcgi_keep_conn on;"
	}
	location := "include /etc/nginx/fastcgi_params; fastcgi_pass $PASS; $KEEP"
	if proxyHTTP {
		pass = "http://" + server
		if keepConn {
			pass = "http://gozd"
		}
		location = `proxy_pass $PASS; proxy_http_version 1.1; proxy_set_header Connection "";`
	}
	conf := strings.NewReplacer("$LOCATION", location).Replace(`
error_log $DIR/nginx-error.log;
pid $DIR/nginx.pid;
worker_processes 1;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path $DIR/nginx-body;
	proxy_temp_path $DIR/nginx-proxy;
	fastcgi_temp_path $DIR/nginx-fastcgi;
	uwsgi_temp_path $DIR/nginx-uwsgi;
	scgi_temp_path $DIR/nginx-scgi;
	$UPSTREAM
	server {
		listen $ADDR;
		location / {
			$LOCATION
		}
	}
}
`)
	conf = strings.NewReplacer("$DIR", dir, "$ADDR", addr, "$PASS", pass, "$UPSTREAM", upstream, "$KEEP", keep).Replace(conf)
	confPath := writeFile(t, dir, "nginx.conf", conf)
	p := startProcess(t, bin, "-e", filepath.Join(dir, "nginx-error.log"), "-p", dir, "-c", confPath, "-g", "daemon off;")
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "nginx-error.log"))
		return string(b)
	}
	waitUntil(t, "nginx to listen on "+addr, func() bool {
		select {
		case <-p.done:
			t.Fatalf("nginx exited: %v\n%s\n%s", p.err, p.out.String(), errorLog())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nginx error log:\n%s", errorLog())
		}
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &exNginx{url: "http://" + addr + "/", client: &http.Client{Timeout: waitTimeout, Transport: tr}}
}

// TestExampleFCGINginx serves the fcgi example behind a real nginx, with a
// connection per request and with kept-alive connections, and through the
// cgi-fcgi tool.
func TestExampleFCGINginx(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t, "./examples/fcgi", "v1")
	for _, keepConn := range []bool{false, true} {
		name := "fresh connections"
		if keepConn {
			name = "fastcgi_keep_conn"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := exampleDir(t)
			e := startExample(t, bin, dir, exampleConf(t, dir, "drain_timeout 40s\n"+exAppGroup))
			n := exStartNginx(t, dir, filepath.Join(dir, "fcgi.sock"), keepConn)
			for range 5 {
				resp, body := exHTTPGet(t, n.client, n.url)
				exCheckHello(t, "nginx", resp.Header, body, e.master)
			}
			resp, body := exHTTPGet(t, n.client, n.url+"version")
			if body != "v1\n" || resp.Header.Get("X-Gozd-Version") != "v1" {
				t.Errorf("GET /version through nginx: %q, X-Gozd-Version %q", body, resp.Header.Get("X-Gozd-Version"))
			}
			// nginx holds idle connections open with keep_conn: the drain
			// must close them rather than wait out drain_timeout.
			e.quit(t)
			if strings.Contains(e.out.String(), "outlived its drain") {
				t.Errorf("the worker was killed at drain_timeout:\n%s", e.out.String())
			}
		})
	}

	t.Run("cgi-fcgi", func(t *testing.T) {
		t.Parallel()
		tool := exNeedTool(t, "cgi-fcgi", "libfcgi-bin")
		dir := exampleDir(t)
		e := startExample(t, bin, dir, exampleConf(t, dir, "drain_timeout 40s\n"+exAppGroup))
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, tool, "-bind", "-connect", filepath.Join(dir, "fcgi.sock"))
		// cgi-fcgi passes its environment as the request's parameters.
		cmd.Env = []string{"REQUEST_METHOD=GET", "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_URI=/", "SCRIPT_NAME=/", "HTTP_HOST=localhost"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cgi-fcgi: %v\n%s", err, out)
		}
		r := textproto.NewReader(bufio.NewReader(bytes.NewReader(out)))
		hdr, err := r.ReadMIMEHeader()
		if err != nil {
			t.Fatalf("cgi-fcgi: bad response: %v\n%s", err, out)
		}
		body, _ := io.ReadAll(r.R)
		exCheckHello(t, "cgi-fcgi", http.Header(hdr), string(body), e.master)
		e.quit(t)
	})
}

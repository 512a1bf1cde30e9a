package gozd

// In-process tests of the Daemon API: registration, every mode serving on
// real sockets, and the lifecycle calls. The drain itself is in drain_test.go.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gozd/gozd/internal/testcert"
)

// serveWait bounds every wait of the in-process daemon tests: generous, so
// a loaded machine fails nothing, yet nothing hangs.
const serveWait = 30 * time.Second

// testDaemon is a Daemon whose Serve runs in a goroutine of the test.
type testDaemon struct {
	*Daemon
	served chan error // receives Serve's result once
}

// newTestDaemon builds a quiet Daemon for cfg. The test's cleanup closes it
// and, if it was started, waits for Serve to return.
func newTestDaemon(t testing.TB, cfg *Config) *testDaemon {
	t.Helper()
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	td := &testDaemon{Daemon: d}
	t.Cleanup(func() {
		td.Close()
		if td.served != nil {
			select {
			case <-td.served:
			case <-time.After(serveWait):
				t.Errorf("Serve did not return within %v of Close", serveWait)
			}
		}
	})
	return td
}

// serveTestDaemon builds a Daemon for cfg, registers handlers (group → any
// handler RegistHandler takes), serves it with ctx and waits until it is
// ready.
func serveTestDaemon(t testing.TB, ctx context.Context, cfg *Config, handlers map[string]any) *testDaemon {
	t.Helper()
	td := newTestDaemon(t, cfg)
	for group, h := range handlers {
		if err := registerAny(td.Daemon, group, h); err != nil {
			t.Fatal(err)
		}
	}
	td.start(ctx)
	td.waitReady(t)
	return td
}

// registerAny registers h with the method that suits its kind.
func registerAny(d *Daemon, group string, h any) error {
	switch h := h.(type) {
	case func(Conn):
		return d.HandleConn(group, h)
	case func(PacketConn):
		return d.HandlePacket(group, h)
	case Server:
		return d.HandleServer(group, h)
	case func(http.ResponseWriter, *http.Request):
		return d.HandleFunc(group, h)
	case http.Handler:
		return d.Handle(group, h)
	}
	return fmt.Errorf("test: %T is no handler", h)
}

// start runs Serve(ctx) in a goroutine.
func (td *testDaemon) start(ctx context.Context) {
	td.served = make(chan error, 1)
	go func() { td.served <- td.Serve(ctx) }()
}

func (td *testDaemon) waitReady(t testing.TB) {
	t.Helper()
	select {
	case <-td.Ready():
	case err := <-td.served:
		t.Fatalf("Serve returned before ready: %v", err)
	case <-time.After(serveWait):
		t.Fatalf("daemon not ready within %v", serveWait)
	}
}

// waitServed returns Serve's result.
func (td *testDaemon) waitServed(t *testing.T) error {
	t.Helper()
	select {
	case err := <-td.served:
		td.served = nil
		return err
	case <-time.After(serveWait):
		t.Fatalf("Serve did not return within %v", serveWait)
		return nil
	}
}

// addr is where group listens.
func (td *testDaemon) addr(t testing.TB, group string) net.Addr {
	t.Helper()
	a, ok := td.Addrs()[group]
	if !ok {
		t.Fatalf("Addrs() has no group %q", group)
	}
	return a
}

// group returns the server of a group (white-box).
func (td *testDaemon) group(t testing.TB, name string) *groupServer {
	t.Helper()
	td.mu.Lock()
	defer td.mu.Unlock()
	for _, gs := range td.groups {
		if gs.cfg.Name == name {
			return gs
		}
	}
	t.Fatalf("no group server %q", name)
	return nil
}

// waitListenersClosed returns once Shutdown or Close has closed the
// listeners: stop closes Draining and the listeners in one critical section
// under d.mu, so taking the lock after Draining is closed means they are.
func (td *testDaemon) waitListenersClosed(t *testing.T) {
	t.Helper()
	select {
	case <-td.Draining():
	case <-time.After(serveWait):
		t.Fatalf("daemon not draining within %v", serveWait)
	}
	//lint:ignore SA2001 the empty critical section orders us after stop
	td.mu.Lock()
	td.mu.Unlock()
}

// waitDrainStarted returns once Shutdown has begun draining gs: its
// listener is closed, keep-alives are off and idle connections are closed.
func (td *testDaemon) waitDrainStarted(t *testing.T, gs *groupServer) {
	t.Helper()
	td.waitListenersClosed(t)
	pollFor(t, fmt.Sprintf("group %q draining", gs.cfg.Name), func() bool { return trackerDraining(gs.tracker) })
}

// pollFor polls cond until it holds, failing the test after serveWait.
func pollFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(serveWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", serveWait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitConns waits until group gs has n open connections.
func waitConns(t *testing.T, gs *groupServer, n int) {
	t.Helper()
	pollFor(t, fmt.Sprintf("%d connections in group %q", n, gs.cfg.Name), func() bool { return gs.tracker.count() == n })
}

// shortTempDir is a temporary directory with a path short enough for unix
// sockets (t.TempDir paths can exceed sun_path).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gozd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// writeServeKeyPair writes a self-signed key pair for localhost, 127.0.0.1
// and ::1 to dir as key.pem and cert.pem, and returns a pool trusting it.
func writeServeKeyPair(t *testing.T, dir string) (keyPath, certPath string, roots *x509.CertPool) {
	t.Helper()
	pair, err := testcert.New(24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if keyPath, certPath, err = pair.Write(dir, "key.pem", "cert.pem"); err != nil {
		t.Fatal(err)
	}
	return keyPath, certPath, pair.Roots()
}

// testClient is an HTTP client with its own connection pool, so tests do not
// share connections; TLS trusts roots and h2 asks for HTTP/2.
func testClient(t *testing.T, roots *x509.CertPool, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: h2,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: serveWait}
}

// get fetches url and returns the response with its body read.
func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, string(body)
}

// echoLines is a tcp handler echoing each line until the peer closes.
func echoLines(c Conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := io.WriteString(c, line); err != nil {
			return
		}
	}
}

// hello answers every HTTP request with "hello PATH".
func hello(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "hello %s", r.URL.Path)
}

// requireTool returns the path of an external program, skipping the test
// when it is missing, except in CI where it must be installed.
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found (Debian package %s), required in CI: %v", name, debianPackage, err)
		}
		t.Skipf("%s not found; install the Debian package %s", name, debianPackage)
	}
	return p
}

func TestDaemonRegistration(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{
		{Name: "raw", Mode: ModeTCP, Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"},
		// Neither registration nor New reads the key pair.
		{Name: "secure", Mode: ModeHTTPS, Network: "tcp", Address: "127.0.0.1:0", Key: "key.pem", Cert: "cert.pem"},
		{Name: "app", Mode: ModeFCGI, Network: "unix", Address: "/nonexistent/app.sock"},
	}}
	connFn := func(Conn) {}
	httpFn := func(http.ResponseWriter, *http.Request) {}
	tests := []struct {
		name     string
		register func(d *Daemon) error
		want     error // sentinel to match, nil for none
		group    string
	}{
		{"unknown group", func(d *Daemon) error { return d.HandleConn("nope", connFn) }, ErrUnknownGroup, "nope"},
		{"unknown http group", func(d *Daemon) error { return d.HandleFunc("Web", httpFn) }, ErrUnknownGroup, "Web"},
		{"http.Handler for tcp", func(d *Daemon) error { return d.Handle("raw", http.HandlerFunc(httpFn)) }, ErrHandlerKind, "raw"},
		{"handler func for tcp", func(d *Daemon) error { return d.HandleFunc("raw", httpFn) }, ErrHandlerKind, "raw"},
		{"conn func for http", func(d *Daemon) error { return d.HandleConn("web", connFn) }, ErrHandlerKind, "web"},
		{"conn func for https", func(d *Daemon) error { return d.HandleConn("secure", connFn) }, ErrHandlerKind, "secure"},
		{"conn func for fcgi", func(d *Daemon) error { return d.HandleConn("app", connFn) }, ErrHandlerKind, "app"},
		{"nil http.Handler", func(d *Daemon) error { return d.Handle("web", nil) }, nil, "web"},
		{"nil handler func", func(d *Daemon) error { return d.HandleFunc("app", nil) }, nil, "app"},
		{"nil conn func", func(d *Daemon) error { return d.HandleConn("raw", nil) }, nil, "raw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			err = tt.register(d)
			if err == nil {
				t.Fatal("registration succeeded; want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %q does not match %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), `"`+tt.group+`"`) {
				t.Errorf("error %q does not name group %q", err, tt.group)
			}
			// A refused handler leaves the group free for a right one.
			if g, ok := cfg.Group(tt.group); ok {
				var h any = connFn
				if g.Mode != ModeTCP {
					h = httpFn
				}
				if err := registerAny(d, tt.group, h); err != nil {
					t.Errorf("registering a right handler after the refused one: %v", err)
				}
			}
		})
	}

	t.Run("second handler", func(t *testing.T) {
		d, err := New(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		firsts := []struct {
			group         string
			first, second any
		}{
			{"raw", connFn, connFn},
			{"web", http.HandlerFunc(httpFn), httpFn},
			{"secure", httpFn, http.NotFoundHandler()},
			{"app", httpFn, httpFn},
		}
		for _, f := range firsts {
			if err := registerAny(d, f.group, f.first); err != nil {
				t.Fatalf("first handler for %q: %v", f.group, err)
			}
			err := registerAny(d, f.group, f.second)
			if !errors.Is(err, ErrDuplicateHandler) {
				t.Errorf("second handler for %q: got %v, want ErrDuplicateHandler", f.group, err)
			}
			if err != nil && !strings.Contains(err.Error(), `"`+f.group+`"`) {
				t.Errorf("error %q does not name group %q", err, f.group)
			}
		}
	})
}

func TestServeWaitsForEveryHandler(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{
		{Name: "raw", Mode: ModeTCP, Network: "tcp", Address: "127.0.0.1:0"},
		{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"},
	}}
	td := newTestDaemon(t, cfg)
	if err := td.HandleConn("raw", echoLines); err != nil {
		t.Fatal(err)
	}
	td.start(context.Background())
	// Once both listeners are bound, Serve is only waiting for "web".
	pollFor(t, "listeners bound", func() bool { return len(td.Addrs()) == 2 })
	select {
	case <-td.Ready():
		t.Fatal("ready while group web has no handler")
	case err := <-td.served:
		t.Fatalf("Serve returned %v while waiting for a handler", err)
	default:
	}
	if err := td.Serve(context.Background()); !errors.Is(err, ErrServing) {
		t.Errorf("second Serve: got %v, want ErrServing", err)
	}

	if err := td.HandleFunc("web", hello); err != nil {
		t.Fatal(err)
	}
	td.waitReady(t)
	_, body := get(t, testClient(t, nil, false), "http://"+td.addr(t, "web").String()+"/x")
	if body != "hello /x" {
		t.Errorf("body %q, want %q", body, "hello /x")
	}
	if err := td.Serve(context.Background()); !errors.Is(err, ErrServing) {
		t.Errorf("Serve while serving: got %v, want ErrServing", err)
	}
}

func TestServeContextDoneBeforeReady(t *testing.T) {
	sock := filepath.Join(shortTempDir(t), "web.sock")
	cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "unix", Address: sock}}}
	td := newTestDaemon(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	td.start(ctx)
	pollFor(t, "listener bound", func() bool { return len(td.Addrs()) == 1 })
	cancel()
	if err := td.waitServed(t); err != nil {
		t.Errorf("Serve after its context ended: got %v, want nil", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file still there after Serve returned: %v", err)
	}
}

func TestServeAfterClose(t *testing.T) {
	for _, stop := range []string{"Close", "Shutdown"} {
		t.Run(stop, func(t *testing.T) {
			cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"}}}
			td := newTestDaemon(t, cfg)
			if err := td.HandleFunc("web", hello); err != nil {
				t.Fatal(err)
			}
			if stop == "Close" {
				td.Close()
			} else if err := td.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown before Serve: %v", err)
			}
			td.start(context.Background())
			if err := td.waitServed(t); !errors.Is(err, ErrClosed) {
				t.Errorf("Serve after %s: got %v, want ErrClosed", stop, err)
			}
		})
	}
}

// TestServeCloseRace closes daemons at every moment of Serve's start-up:
// Serve must always return ErrClosed and leave nothing listening.
func TestServeCloseRace(t *testing.T) {
	dir := shortTempDir(t)
	for i := range 40 {
		sock := filepath.Join(dir, fmt.Sprintf("%d.sock", i))
		cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "unix", Address: sock}}}
		td := newTestDaemon(t, cfg)
		if err := td.HandleFunc("web", hello); err != nil {
			t.Fatal(err)
		}
		td.start(context.Background())
		// Vary the moment of Close from before Serve runs to after it serves.
		for range i % 8 {
			time.Sleep(time.Duration(i) * 20 * time.Microsecond)
		}
		td.Close()
		if err := td.waitServed(t); !errors.Is(err, ErrClosed) {
			t.Errorf("round %d: Serve: got %v, want ErrClosed", i, err)
		}
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			t.Errorf("round %d: %s still accepts after Serve returned", i, sock)
		}
	}
}

func TestServeModes(t *testing.T) {
	dir := shortTempDir(t)
	_, _, roots := writeServeKeyPair(t, dir)
	rawSock := filepath.Join(dir, "raw.sock")
	appSock := filepath.Join(dir, "app.sock")
	hasIPv6 := false
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		hasIPv6 = true
	}

	// Parsed from text, as a daemon reads its file; key paths are relative
	// to the file's directory.
	text := `drain_timeout 5s
[raw4]
mode   tcp
listen 127.0.0.1:0
[rawunix]
mode   tcp
listen unix:` + rawSock + `
chmod  0660
[web]
mode   http
listen 127.0.0.1:0
[secure]
mode   [https]
listen 127.0.0.1:0
key    key.pem
cert   cert.pem
[app]
mode   fcgi
listen [` + appSock + `]
`
	if hasIPv6 {
		text += "[raw6]\nmode tcp\nlisten [::1]:0\n"
	}
	cfg, err := ParseConfig(filepath.Join(dir, "modes.conf"), strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]any{
		"raw4": echoLines, "rawunix": echoLines,
		"web": hello, "secure": http.HandlerFunc(hello), "app": hello,
	}
	if hasIPv6 {
		handlers["raw6"] = echoLines
	}
	td := serveTestDaemon(t, context.Background(), cfg, handlers)

	t.Run("Addrs", func(t *testing.T) {
		for _, g := range cfg.Groups {
			a := td.addr(t, g.Name)
			switch a := a.(type) {
			case *net.TCPAddr:
				if a.Port == 0 {
					t.Errorf("group %q: Addrs reports port 0, not the bound port", g.Name)
				}
			case *net.UnixAddr:
				if a.Name != g.Address {
					t.Errorf("group %q: Addrs reports %s, want %s", g.Name, a.Name, g.Address)
				}
			default:
				t.Errorf("group %q: address %v of type %T", g.Name, a, a)
			}
		}
	})

	for _, group := range []string{"raw4", "raw6", "rawunix"} {
		t.Run("tcp "+group, func(t *testing.T) {
			if group == "raw6" && !hasIPv6 {
				t.Skip("no IPv6 loopback (::1) on this machine")
			}
			a := td.addr(t, group)
			c, err := net.DialTimeout(a.Network(), a.String(), serveWait)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(serveWait))
			r := bufio.NewReader(c)
			for _, line := range []string{"one\n", "two\n"} {
				if _, err := io.WriteString(c, line); err != nil {
					t.Fatal(err)
				}
				got, err := r.ReadString('\n')
				if err != nil || got != line {
					t.Fatalf("echo of %q: got %q, %v", line, got, err)
				}
			}
		})
	}

	t.Run("unix socket chmod", func(t *testing.T) {
		fi, err := os.Stat(rawSock)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
			t.Errorf("socket file mode %v, want a socket with 0660", fi.Mode())
		}
	})

	t.Run("http", func(t *testing.T) {
		resp, body := get(t, testClient(t, nil, false), "http://"+td.addr(t, "web").String()+"/plain")
		if resp.StatusCode != http.StatusOK || body != "hello /plain" {
			t.Errorf("got %s %q", resp.Status, body)
		}
	})

	t.Run("https", func(t *testing.T) {
		url := "https://" + td.addr(t, "secure").String() + "/tls"
		for _, h2 := range []bool{false, true} {
			resp, body := get(t, testClient(t, roots, h2), url)
			if resp.StatusCode != http.StatusOK || body != "hello /tls" {
				t.Errorf("h2=%v: got %s %q", h2, resp.Status, body)
			}
			wantMajor := 1
			if h2 {
				wantMajor = 2 // negotiated by ALPN
			}
			if resp.ProtoMajor != wantMajor {
				t.Errorf("h2=%v: protocol %s, want major version %d", h2, resp.Proto, wantMajor)
			}
			if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
				t.Errorf("h2=%v: TLS state %+v, want TLS 1.2 or later", h2, resp.TLS)
			}
		}
	})

	t.Run("https refuses TLS 1.1", func(t *testing.T) {
		addr := td.addr(t, "secure").String()
		dial := func(maxVersion uint16) error {
			ctx, cancel := context.WithTimeout(context.Background(), serveWait)
			defer cancel()
			d := &tls.Dialer{Config: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: maxVersion}}
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
			}
			return err
		}
		// The server must be the one refusing, with a protocol_version alert.
		if err := dial(tls.VersionTLS11); err == nil || !strings.Contains(err.Error(), "remote error: tls: protocol version") {
			t.Errorf("a client offering at most TLS 1.1: %v; want the server's protocol version alert", err)
		}
		if err := dial(tls.VersionTLS12); err != nil {
			t.Errorf("a TLS 1.2 client was refused: %v", err)
		}
	})

	t.Run("fcgi via cgi-fcgi", func(t *testing.T) {
		cgiFCGI := requireTool(t, "cgi-fcgi", "libfcgi-bin")
		ctx, cancel := context.WithTimeout(context.Background(), serveWait)
		defer cancel()
		cmd := exec.CommandContext(ctx, cgiFCGI, "-bind", "-connect", appSock)
		// SERVER_PROTOCOL is sent by every web server; net/http/cgi needs it.
		cmd.Env = append(os.Environ(), "REQUEST_METHOD=GET", "SCRIPT_NAME=/", "REQUEST_URI=/fcgi", "SERVER_PROTOCOL=HTTP/1.1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cgi-fcgi: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "Status: 200") || !strings.HasSuffix(string(out), "hello /fcgi") {
			t.Errorf("cgi-fcgi output %q: want status 200 and body %q", out, "hello /fcgi")
		}
	})

	t.Run("http servers bound the header read", func(t *testing.T) {
		// A client that connects and sends nothing must not hold a
		// connection forever; waiting out the real timeout would take
		// seconds, so check the server's setting.
		for _, name := range []string{"web", "secure"} {
			srv := td.group(t, name).http
			if srv == nil || srv.ReadHeaderTimeout != DefaultReadHeaderTimeout || srv.ReadHeaderTimeout <= 0 {
				t.Errorf("group %q: ReadHeaderTimeout not %v", name, DefaultReadHeaderTimeout)
			}
			if srv != nil && srv.IdleTimeout <= 0 {
				t.Errorf("group %q: no IdleTimeout", name)
			}
		}
	})
}

func TestServeBindError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "free.sock")
	cfg := &Config{Groups: []GroupConfig{
		{Name: "first", Mode: ModeFCGI, Network: "unix", Address: sock},
		{Name: "taken", Mode: ModeHTTP, Network: "tcp", Address: busy.Addr().String()},
	}}
	td := newTestDaemon(t, cfg)
	td.HandleFunc("first", hello)
	td.HandleFunc("taken", hello)
	td.start(context.Background())
	err = td.waitServed(t)
	if err == nil || !strings.Contains(err.Error(), `"taken"`) || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("Serve: got %v, want an error naming group \"taken\" and its address", err)
	}
	// The listener bound before the failure is released.
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket of the first group left behind: %v", err)
	}
}

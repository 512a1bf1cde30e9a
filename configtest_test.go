package gozd_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
)

// TestConfigTestFlag runs -t as an operator checks a config before a
// deploy: "configuration ok", or every error with its file:line, and in
// either case nothing bound, no pid file, no runtime directory.
func TestConfigTestFlag(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t, "./examples/http", "v1")
	dir := exampleDir(t)
	addr := freePort(t)
	// No pidfile directive: the default runtime directory must not appear.
	good := writeFile(t, dir, "good.conf", "[web]\nmode http\nlisten "+addr+"\n")
	bad := writeFile(t, dir, "bad.conf", strings.Join([]string{
		"drain_timeout 10x", // 1
		"[web]",             // 2
		"mode http",         // 3
		"listen " + addr,    // 4
		"colour blue",       // 5
		"[tls]",             // 6
		"mode https",        // 7
		"listen 127.0.0.1:0",
		"key " + dir + "/missing.pem", // 9
		"cert " + dir + "/missing.pem",
	}, "\n"))

	p := startProcess(t, bin, "-t", "-c", good)
	if code := p.wait(); code != 0 {
		t.Fatalf("-t on a good config: exit %d\n%s", code, p.out.String())
	}
	if want := good + ": configuration ok\n"; p.out.String() != want {
		t.Errorf("-t on a good config printed %q, want %q", p.out.String(), want)
	}

	p = startProcess(t, bin, "-t", "-c", bad)
	if code := p.wait(); code != 1 {
		t.Fatalf("-t on a bad config: exit %d, want 1\n%s", code, p.out.String())
	}
	out := p.out.String()
	for _, want := range []string{
		fmt.Sprintf("gozd: %s:1: bad duration", bad),
		fmt.Sprintf("gozd: %s:5: unknown directive \"colour\"", bad),
		fmt.Sprintf("gozd: %s:9: reading key", bad),
	} {
		if !strings.Contains(out, want+"") {
			t.Errorf("-t output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("-t printed %d lines for 3 errors:\n%s", n, out)
	}

	// A start with the same config reports them all too.
	p = startProcess(t, bin, "-f", "-c", bad)
	if code := p.wait(); code == 0 || strings.Count(p.out.String(), "gozd: "+bad+":") != 3 {
		t.Errorf("start on a config with 3 errors: exit %d, output:\n%s", code, p.out.String())
	}

	for _, conf := range []string{good, bad} {
		sum := sha256.Sum256([]byte(conf))
		name := strings.TrimSuffix(conf[strings.LastIndex(conf, "/")+1:], ".conf")
		if _, err := os.Lstat("/run/gozd/" + name + "-" + hex.EncodeToString(sum[:4])); err == nil {
			t.Errorf("-t created the runtime directory of %s", conf)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("%s taken after -t: %v", addr, err)
	}
	ln.Close()

	p = startProcess(t, bin, "-t", "-s", "reload", "-c", good)
	if code := p.wait(); code != 2 || !strings.Contains(p.out.String(), "use one of them") {
		t.Errorf("-t with -s: exit %d, output:\n%s", code, p.out.String())
	}
}

package gozd_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExampleH2C runs examples/h2c: the program's *http.Server answers a
// prior-knowledge HTTP/2 client and an HTTP/1.1 client on one port, before
// and after a reload.
func TestExampleH2C(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t, "./examples/h2c", "v1")
	e := startExample(t, bin, exampleDir(t), "drain_timeout 20s\n[web]\nmode http\nlisten 127.0.0.1:0\nprotocols http1 h2c\n")
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	clients := map[string]*http.Client{
		"HTTP/2.0": {Transport: tr, Timeout: waitTimeout},
		"HTTP/1.1": {Timeout: waitTimeout},
	}
	check := func(when string) {
		t.Helper()
		for proto, c := range clients {
			resp, err := c.Get("http://" + e.addrs["web"] + "/")
			if err != nil {
				t.Fatalf("%s, %s: %v", when, proto, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(string(body), proto+" from gozd h2c v1 pid ") {
				t.Errorf("%s, %s: %q", when, proto, body)
			}
		}
	}
	check("before the reload")
	e.signal(syscall.SIGHUP)
	waitUntil(t, "the reload", func() bool { return strings.Contains(e.out.String(), `msg="old worker exited"`) })
	check("after the reload")
	e.quit(t)
}

// TestExampleUDP runs examples/udp: a question is answered, before and
// after a reload, by the worker of the moment.
func TestExampleUDP(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t, "./examples/udp", "v1")
	e := startExample(t, bin, exampleDir(t), "drain_timeout 20s\n[dns]\nmode udp\nlisten 127.0.0.1:0\n")
	c, err := net.Dial("udp", e.addrs["dns"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func(q string) (pid int) {
		t.Helper()
		c.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := c.Write([]byte(q)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no answer to %q: %v", q, err)
		}
		var answer string
		if _, err := fmt.Sscanf(string(buf[:n]), "v1 %d: %s", &pid, &answer); err != nil || answer != strings.ToUpper(q) {
			t.Fatalf("answer %q to %q", buf[:n], q)
		}
		return pid
	}
	first := ask("hello")
	e.signal(syscall.SIGHUP)
	waitUntil(t, "the reload", func() bool { return strings.Contains(e.out.String(), `msg="old worker exited"`) })
	if second := ask("again"); second == first {
		t.Errorf("answered by worker %d after the reload too", first)
	}
	e.quit(t)
}

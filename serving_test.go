package gozd_test

// Protocols, client certificates and udp groups served by a real master
// and its workers, across reloads.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gozd/gozd/internal/testcert"
)

// reloadUnderLoad reloads the master n times by SIGHUP, each once every
// generator has made progress, and waits each time for the old worker to
// exit.
func (d *masterProcess) reloadUnderLoad(n int, load *loadGens) {
	d.t.Helper()
	done := d.logCount(`msg="old worker exited"`)
	for i := 1; i <= n; i++ {
		for _, g := range load.gens {
			m := g.ok.Load() + g.failed.Load() + 10
			waitUntil(d.t, g.name+" to get going", func() bool { return g.ok.Load()+g.failed.Load() >= m })
		}
		d.proc.signal(syscall.SIGHUP)
		d.waitLog(`msg="old worker exited"`, done+i)
	}
	// A reload that went well logs no error: an operator's alert would
	// fire on every deploy.
	if line, ok := d.proc.out.line("level=ERROR"); ok {
		d.t.Errorf("the master logged an error during reloads that went well: %s", line)
	}
}

// TestH2CReloads: an http group with "protocols http1 h2c" serves HTTP/2
// to a client with prior knowledge, and ten reloads under that load fail no
// request.
func TestH2CReloads(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
drain_timeout 10s
[web]
mode      http
listen    127.0.0.1:0
protocols http1 h2c
`)
	url := "http://" + d.addrs["web"] + "/"
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	h2c := &http.Client{Transport: tr, Timeout: waitTimeout}
	post := func(int) (string, error) {
		resp, err := h2c.Post(url, "text/plain", strings.NewReader("hello"))
		if err != nil {
			return "", err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", err
		}
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			return "", fmt.Errorf("%s %s: %q", resp.Proto, resp.Status, body)
		}
		return resp.Header.Get("X-Version"), nil
	}
	load := startLoad(t, time.Millisecond,
		&loadGen{name: "h2c POST", do: post},
		&loadGen{name: "h2c POST 2", do: post},
		httpGen("http/1.1 keep-alive", keepAliveClient, url),
	)
	defer keepAliveClient.CloseIdleConnections()
	d.reloadUnderLoad(10, load)
	load.check(t)
}

// TestClientCA: an https group with client_ca refuses a client without a
// certificate, serves one whose certificate the CA issued, and after a
// reload with another CA in the file follows the new CA.
func TestClientCA(t *testing.T) {
	dir := newDaemonDir(t)
	key, cert := writeKeyPair(t, dir)
	serverPEM, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverPEM)
	caFile := filepath.Join(dir, "clients.pem")
	newCA := func(name string) (*testcert.CA, tls.Certificate) {
		ca, err := testcert.NewCA(name, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		client, err := ca.ClientCert("client of " + name)
		if err != nil {
			t.Fatal(err)
		}
		return ca, client
	}
	ca1, client1 := newCA("ca1")
	ca2, client2 := newCA("ca2")
	if err := os.WriteFile(caFile, ca1.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	d := startMaster(t, dir, fmt.Sprintf(`
[tls]
mode      https
listen    127.0.0.1:0
key       %s
cert      %s
client_ca %s
`, key, cert, caFile))
	url := "https://" + d.addrs["tls"] + "/"
	// A fresh connection each time: the rules apply at the handshake.
	get := func(certs ...tls.Certificate) error {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: waitTimeout}).Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}
	if err := get(); err == nil {
		t.Error("a client without a certificate was served")
	}
	if err := get(client1); err != nil {
		t.Errorf("a client with a certificate from client_ca: %v", err)
	}
	if err := get(client2); err == nil {
		t.Error("a client with a certificate from another CA was served")
	}

	if err := os.WriteFile(caFile, ca2.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	d.proc.signal(syscall.SIGHUP)
	d.waitLog(`msg="old worker exited"`, 1)
	if err := get(client2); err != nil {
		t.Errorf("after the reload, a client of the new CA: %v", err)
	}
	if err := get(client1); err == nil {
		t.Error("after the reload, a client of the old CA was served")
	}
	if err := get(); err == nil {
		t.Error("after the reload, a client without a certificate was served")
	}
}

// udpGen asks a udp group a question per call on its own socket and checks
// that the answer ("VERSION PID question") is to that question.
func udpGen(t *testing.T, name, addr string) *loadGen {
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	buf := make([]byte, 512)
	return &loadGen{name: name, do: func(n int) (string, error) {
		q := fmt.Sprintf("%s question %d", name, n)
		if _, err := c.Write([]byte(q)); err != nil {
			return "", err
		}
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		m, err := c.Read(buf)
		if err != nil {
			return "", fmt.Errorf("no answer to %q: %w", q, err)
		}
		f := strings.SplitN(string(buf[:m]), " ", 3)
		if len(f) != 3 || f[2] != q {
			return "", fmt.Errorf("answer %q to %q", buf[:m], q)
		}
		return f[0], nil
	}}
}

// TestUDPReloads: a udp group answers every datagram of a request/response
// load across ten reloads (the master holds the socket, so datagrams wait
// for the next worker), and a group removed by a reload stops answering
// once its old worker is gone.
func TestUDPReloads(t *testing.T) {
	dir := newDaemonDir(t)
	const web = `
drain_timeout 10s
[web]
mode   http
listen 127.0.0.1:0
`
	d := startMaster(t, dir, web+`
[udp]
mode   udp
listen 127.0.0.1:0
`)
	addr := d.addrs["udp"]
	var gens []*loadGen
	for i := range 4 {
		gens = append(gens, udpGen(t, fmt.Sprintf("udp%d", i), addr))
	}
	load := startLoad(t, time.Millisecond, gens...)
	d.reloadUnderLoad(10, load)
	load.check(t)

	d.writeConfig(web)
	d.proc.signal(syscall.SIGHUP)
	d.waitLog(`msg="old worker exited"`, 11)
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("anyone?"))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 512)); err == nil {
		t.Errorf("the removed udp group still answers (%d bytes)", n)
	}
}

// TestUDPSocketActivation: a udp socket passed by systemd (LISTEN_FDS) is
// matched to its group by address, served, and kept across a reload.
func TestUDPSocketActivation(t *testing.T) {
	dir := newDaemonDir(t)
	bin := buildTestDaemon(t, "v1", "")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	f, err := pc.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	conf := writeFile(t, dir, "gozd.conf", fmt.Sprintf("pidfile %s/gozd.pid\n[udp]\nmode udp\nlisten %s\n", dir, pc.LocalAddr()))
	// LISTEN_PID must be the daemon's pid: the shell execs it.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin, "-f", "-c", conf)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{f}
	p := opsStartCmd(t, cmd)
	if _, addrs := startedAddrs(t, p.waitOutput("gozd: started")); addrs["udp"] != pc.LocalAddr().String() {
		t.Fatalf("udp group on %s; want the passed socket %s", addrs["udp"], pc.LocalAddr())
	}
	ask := udpGen(t, "activated", pc.LocalAddr().String())
	if _, err := ask.do(1); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	waitUntil(t, "the reload", func() bool { return strings.Contains(p.out.String(), `msg="old worker exited"`) })
	if _, err := ask.do(2); err != nil {
		t.Fatalf("after the reload: %v", err)
	}
}

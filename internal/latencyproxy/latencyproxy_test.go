package latencyproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

const (
	delay   = 40 * time.Millisecond
	timeout = 30 * time.Second // bounds every wait; never reached unless broken
)

// startPair starts a server on loopback, a proxy in front of it, and
// returns the client side and the server side of one proxied connection.
func startPair(t *testing.T) (client net.Conn, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p, err := Start("tcp", ln.Addr().String(), delay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	client, err = net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(timeout))
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	client.SetDeadline(time.Now().Add(timeout))
	sc.SetDeadline(time.Now().Add(timeout))
	return client, sc.(*net.TCPConn)
}

func TestDelaysEachDirectionInOrder(t *testing.T) {
	client, server := startPair(t)
	// Many small writes: the other side must see them in order, whole.
	var want bytes.Buffer
	start := time.Now()
	for i := range 200 {
		s := fmt.Sprintf("line %d\n", i)
		want.WriteString(s)
		if _, err := io.WriteString(client, s); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatal(err)
	}
	if oneWay := time.Since(start); oneWay < delay {
		t.Errorf("client to server took %s, want at least %s", oneWay, delay)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("server got the bytes out of order or changed")
	}

	// A round trip takes both delays.
	start = time.Now()
	if _, err := server.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(client, b); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write(b); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, b); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 2*delay {
		t.Errorf("round trip took %s, want at least %s", rtt, 2*delay)
	}
}

func TestForwardsFINAfterTheData(t *testing.T) {
	client, server := startPair(t)
	start := time.Now()
	io.WriteString(server, "bye")
	server.CloseWrite()
	// The client sees the data, then EOF, after the delay; and it can
	// still send on its half.
	b, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "bye" {
		t.Fatalf("client read %q, want %q", b, "bye")
	}
	if took := time.Since(start); took < delay {
		t.Errorf("FIN arrived after %s, want at least %s", took, delay)
	}
	io.WriteString(client, "still here")
	client.(*net.TCPConn).CloseWrite()
	b, err = io.ReadAll(server)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "still here" {
		t.Fatalf("server read %q after its half-close, want %q", b, "still here")
	}
}

func TestForwardsRST(t *testing.T) {
	client, server := startPair(t)
	start := time.Now()
	server.SetLinger(0)
	server.Close()
	_, err := client.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read: %v, want a reset", err)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("RST arrived after %s, want at least %s", took, delay)
	}
}

// A server FIN crosses a request the client sends within the delay: the
// request reaches a closed socket and the client is reset. This is the
// race the proxy exists to show.
func TestFINCrossesRequest(t *testing.T) {
	client, server := startPair(t)
	server.Close()
	time.Sleep(delay / 4) // the FIN is on its way, not yet at the client
	if _, err := io.WriteString(client, "POST / HTTP/1.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(client)
	if len(b) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("client read %q, %v: want EOF or a reset", b, err)
	}
}

func TestRefusedTargetResets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, err := Start("tcp", addr, delay)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %v, want a reset", err)
	}
}

package gozd

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestUDPDrain: a udp group's handler reads datagrams; at the drain its
// ReadFrom fails with net.ErrClosed while its WriteTo still answers the
// datagram it read before; the socket is closed once it returns.
func TestUDPDrain(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			if addr[0] == '[' {
				if c, err := net.ListenPacket("udp", addr); err != nil {
					t.Skipf("no IPv6 loopback: %v", err)
				} else {
					c.Close()
				}
			}
			testUDPDrain(t, addr)
		})
	}
}

func testUDPDrain(t *testing.T, addr string) {
	readErr := make(chan error, 1)
	gotLate := make(chan struct{})
	cfg := &Config{DrainTimeout: 5 * time.Second, Groups: []GroupConfig{{Name: "dns", Mode: ModeUDP, Network: "udp", Address: addr}}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"dns": func(pc PacketConn) {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				readErr <- err
				return
			}
			if string(buf[:n]) == "late" {
				// Answer only once the drain has begun.
				close(gotLate)
				<-pc.Context().Done()
			}
			pc.WriteTo(append([]byte("re: "), buf[:n]...), from)
		}
	}})
	c, err := net.Dial("udp", td.addr(t, "dns").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(serveWait))
	ask := func(q string) string {
		t.Helper()
		if _, err := c.Write([]byte(q)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("answer to %q: %v", q, err)
		}
		return string(buf[:n])
	}
	if a := ask("one"); a != "re: one" {
		t.Fatalf("answer %q", a)
	}
	if _, err := c.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	gs := td.group(t, "dns")
	waitConns(t, gs, 1) // the handler counts as one
	select {
	case <-gotLate:
	case <-time.After(serveWait):
		t.Fatal("the handler did not read the datagram")
	}
	shut := make(chan error, 1)
	go func() { shut <- td.Shutdown(context.Background()) }()
	buf := make([]byte, 512)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "re: late" {
		t.Fatalf("the answer written during the drain: %q, %v", buf[:n], err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadFrom at the drain: %v; want net.ErrClosed", err)
		}
	case <-time.After(serveWait):
		t.Fatal("ReadFrom did not end at the drain")
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(serveWait):
		t.Fatal("Shutdown did not return once the handler did")
	}
}

// TestUDPClose: Close cuts a handler that ignores the drain: its socket is
// closed under it.
func TestUDPClose(t *testing.T) {
	ended := make(chan error, 1)
	cfg := &Config{Groups: []GroupConfig{{Name: "dns", Mode: ModeUDP, Network: "udp", Address: "127.0.0.1:0"}}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"dns": func(pc PacketConn) {
		<-pc.Context().Done()
		for { // writes until they fail
			if _, err := pc.WriteTo([]byte("x"), pc.LocalAddr()); err != nil {
				ended <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}})
	td.Close()
	select {
	case err := <-ended:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("WriteTo after Close: %v; want net.ErrClosed", err)
		}
	case <-time.After(serveWait):
		t.Fatal("the handler's socket was not closed")
	}
}

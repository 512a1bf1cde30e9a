package gozd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// TestHandoffWithoutHeir: Conn.Handoff with nobody to take the connection
// (a Daemon outside a master, draining or not) fails with ErrNoHandoff and
// leaves the connection usable; Resumed is false for an accepted one.
func TestHandoffWithoutHeir(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{{Name: "raw", Mode: ModeTCP, Network: "tcp", Address: "127.0.0.1:0"}}}
	handler := func(c Conn) {
		_, resumed := c.Resumed()
		err := c.Handoff([]byte("state"))
		fmt.Fprintf(c, "serving: resumed %v, %v\n", resumed, errors.Is(err, ErrNoHandoff))
		<-c.Context().Done()
		err = c.Handoff([]byte("state"))
		fmt.Fprintf(c, "draining: %v\n", errors.Is(err, ErrNoHandoff))
	}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"raw": handler})
	c := dialTCP(t, td.addr(t, "raw"))
	c.SetReadDeadline(time.Now().Add(serveWait))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); line != "serving: resumed false, true\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	shut := shutdownAsync(td.Daemon, context.Background())
	if line, err := r.ReadString('\n'); line != "draining: true\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	if rest, err := io.ReadAll(r); len(rest) != 0 || err != nil {
		t.Errorf("after the handler returned: %q, %v; want EOF", rest, err)
	}
	waitErr(t, shut, "Shutdown")
}

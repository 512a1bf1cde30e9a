package gozd

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestOpsPathsOnlyWhenSet: a group with a metrics path and no health path
// hands a request whose target has no path (absolute form, "GET
// http://host") to the program, not to an endpoint whose path is unset.
func TestOpsPathsOnlyWhenSet(t *testing.T) {
	cfg := &Config{Groups: []GroupConfig{{Name: "web", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:0", Metrics: "/metrics"}}}
	td := serveTestDaemon(t, context.Background(), cfg, map[string]any{"web": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "the program")
	}})
	c := dialTCP(t, td.addr(t, "web"))
	c.SetDeadline(time.Now().Add(serveWait))
	if _, err := io.WriteString(c, "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "the program" {
		t.Fatalf("GET of an absolute target without a path: %d %q; want the program's answer", resp.StatusCode, body)
	}
}

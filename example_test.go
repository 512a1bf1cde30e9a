package gozd_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/gozd/gozd"
)

// A Daemon serves the groups of a Config in this process, with no master
// and no reload: the API beneath Daemonize, for programs and tests that
// manage their own process. Port 0 picks a free port; Addrs says which.
func ExampleDaemon() {
	cfg := &gozd.Config{
		DrainTimeout: 10 * time.Second,
		Groups: []gozd.GroupConfig{
			{Name: "echo", Mode: gozd.ModeTCP, Network: "tcp", Address: "127.0.0.1:0"},
			{Name: "web", Mode: gozd.ModeHTTP, Network: "tcp", Address: "127.0.0.1:0"},
		},
	}
	d, err := gozd.New(cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	// Serve starts only once every group has a handler.
	if err := d.HandleConn("echo", func(c gozd.Conn) { io.Copy(c, c) }); err != nil {
		log.Fatal(err)
	}
	if err := d.HandleFunc("web", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from gozd")
	}); err != nil {
		log.Fatal(err)
	}

	served := make(chan error, 1)
	go func() { served <- d.Serve(context.Background()) }()
	select {
	case <-d.Ready():
	case err := <-served:
		log.Fatal(err)
	}
	addrs := d.Addrs()

	resp, err := http.Get("http://" + addrs["web"].String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("web: %s %s", resp.Status, body)

	c, err := net.Dial("tcp", addrs["echo"].String())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(c, "ping")
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close() // the handler returns, so the drain need not wait for it
	fmt.Printf("echo: %s", line)

	// Shutdown stops accepting and waits, at most until ctx ends, for the
	// connections to finish; Serve then returns ErrClosed.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	fmt.Println("shutdown:", d.Shutdown(ctx))
	fmt.Println("serve returned ErrClosed:", errors.Is(<-served, gozd.ErrClosed))
	// Output:
	// web: 200 OK hello from gozd
	// echo: ping
	// shutdown: <nil>
	// serve returned ErrClosed: true
}

// The seed API: Daemonize reads -c -s -f -v, runs the master and the
// workers, and returns only in a worker; RegistHandler gives each group of
// the config file its handler; the channel fires once this worker has
// drained after a reload or a quit. Run the program as
//
//	app -c app.conf      # start in the background; -f to stay in the foreground
//	app -c app.conf -s reload
//
// with an app.conf such as
//
//	[Group0]
//	mode   tcp
//	listen 127.0.0.1:9000
//
//	[Group1]
//	mode   http
//	listen 127.0.0.1:8080
func Example_seedAPI() {
	serveTCP := func(conn gozd.Conn) {
		// conn is a net.Conn; its Context ends when the worker drains.
		fmt.Fprintln(conn, "hello")
	}
	serveHTTP := func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	}

	daemonChan := gozd.Daemonize()
	if err := gozd.RegistHandler("Group0", "serveTCP", serveTCP); err != nil {
		log.Fatal(err)
	}
	if err := gozd.RegistHandler("Group1", "serveHTTP", serveHTTP); err != nil {
		log.Fatal(err)
	}
	<-daemonChan
}

package gozd_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gozd/gozd"
)

// An http group served by the program's own *http.Server keeps its
// settings; a udp group runs its handler once, until the drain ends its
// reads.
func ExampleDaemon_HandleServer() {
	cfg := &gozd.Config{Groups: []gozd.GroupConfig{
		{Name: "web", Mode: gozd.ModeHTTP, Network: "tcp", Address: "127.0.0.1:0", Protocols: []string{"http1", "h2c"}},
		{Name: "dns", Mode: gozd.ModeUDP, Network: "udp", Address: "127.0.0.1:0"},
	}}
	d, err := gozd.New(cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:        http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, r.Proto) }),
		WriteTimeout:   10 * time.Second,
		MaxHeaderBytes: 16 << 10,
	}
	if err := d.HandleServer("web", srv); err != nil {
		log.Fatal(err)
	}
	if err := d.HandlePacket("dns", func(pc gozd.PacketConn) {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if n > 0 {
				pc.WriteTo([]byte(strings.ToUpper(string(buf[:n]))), addr)
			}
			if errors.Is(err, net.ErrClosed) {
				return // draining: the next worker reads from here on
			}
		}
	}); err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()
	<-d.Ready()

	c, err := net.Dial("udp", d.Addrs()["dns"].String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	fmt.Println(string(buf[:n]))

	stop() // drains, as a reload does
	fmt.Println(<-served)
	// Output:
	// HELLO
	// <nil>
}

// Worker is nil outside a worker started by gozd's master.
func ExampleWorker() {
	fmt.Println(gozd.Worker() == nil)
	// Output: true
}

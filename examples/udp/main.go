// Command udp is a small DNS-like service on a gozd udp group: every
// datagram is a question, answered with one datagram. A reload loses none:
// the master keeps the socket, the old worker answers what it has read, and
// the new worker reads the rest. The socket is declared in examples/udp.conf,
// group dns.
//
//	go run ./examples/udp -f -c examples/udp.conf
//	echo -n hello | nc -u -w1 127.0.0.1 5353
package main

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strings"

	"github.com/gozd/gozd"
)

// version is set at build time: go build -ldflags "-X main.version=v2".
var version = "dev"

// serve answers each datagram with "VERSION PID: QUESTION" in upper case,
// until the drain ends the reads.
func serve(pc gozd.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if n > 0 {
			answer := fmt.Sprintf("%s %d: %s", version, os.Getpid(), strings.ToUpper(string(buf[:n])))
			if _, werr := pc.WriteTo([]byte(answer), addr); werr != nil {
				log.Printf("udp: answering %s: %v", addr, werr)
			}
		}
		if errors.Is(err, net.ErrClosed) {
			return // the drain: the next worker reads from here on
		}
		if err != nil {
			log.Printf("udp: read: %v", err) // e.g. a datagram larger than buf
		}
	}
}

func main() {
	daemonChan := gozd.Daemonize()
	if err := gozd.RegistHandler("dns", "udp", serve); err != nil {
		fmt.Fprintf(os.Stderr, "udp %s: %v\n", version, err)
		os.Exit(1)
	}
	<-daemonChan
}

// Command gozd-services serves the services phase's groups with gozd: a
// *grpc.Server on a tcp group "grpc", a udp group "udp", and a tcp group
// "proxy" whose handler io.Copy's the upstream into the gozd.Conn.
package main

import (
	"fmt"
	"os"

	"github.com/gozd/gozd"
	"github.com/gozd/gozd/bench/servers/internal/services"
)

var version = "dev"

func main() {
	done := gozd.Daemonize()
	for _, h := range []struct {
		group   string
		handler any
	}{
		{"grpc", services.GRPC()},
		{"udp", func(pc gozd.PacketConn) { services.UDPEcho(pc) }},
		{"proxy", func(c gozd.Conn) { services.Proxy(c) }},
	} {
		if err := gozd.RegistHandler(h.group, h.group, h.handler); err != nil {
			fmt.Fprintln(os.Stderr, version, err)
			os.Exit(1)
		}
	}
	<-done
}

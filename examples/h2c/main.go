// Command h2c serves HTTP/2 without TLS (h2c, prior knowledge) and HTTP/1.1
// on one port, from the program's own *http.Server: gozd keeps its settings
// (the timeouts and MaxHeaderBytes below) and serves the protocols the
// config's protocols directive names. The listener is declared in
// examples/h2c.conf, group web.
//
//	go run ./examples/h2c -f -c examples/h2c.conf
//	curl --http2-prior-knowledge http://127.0.0.1:8280/
//	curl http://127.0.0.1:8280/
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/gozd/gozd"
)

// version is set at build time: go build -ldflags "-X main.version=v2".
var version = "dev"

func main() {
	daemonChan := gozd.Daemonize()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s from gozd h2c %s pid %d\n", r.Proto, version, os.Getpid())
		}),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	if err := gozd.RegistHandler("web", "h2c", srv); err != nil {
		fmt.Fprintf(os.Stderr, "h2c %s: %v\n", version, err)
		os.Exit(1)
	}
	<-daemonChan
}

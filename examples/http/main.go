// Command http serves the demo handler over HTTP.
// The listener is declared in examples/http.conf, group web.
//
//	go run ./examples/http -f -c examples/http.conf
//	curl -i http://127.0.0.1:8180/
package main

import (
	"fmt"
	"os"

	"github.com/gozd/gozd"
	"github.com/gozd/gozd/examples/internal/demo"
)

// version is set at build time: go build -ldflags "-X main.version=v2".
var version = "dev"

func main() {
	daemonChan := gozd.Daemonize()
	if err := gozd.RegistHandler("web", "demo.Handler", demo.Handler(version)); err != nil {
		fmt.Fprintf(os.Stderr, "http %s: %v\n", version, err)
		os.Exit(1)
	}
	<-daemonChan
}

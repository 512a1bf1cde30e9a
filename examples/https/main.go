// Command https serves the demo handler over HTTPS, with the throwaway certificate in examples/tls.
// The listener is declared in examples/https.conf, group secure.
//
//	go run ./examples/https -f -c examples/https.conf
//	curl -i --cacert examples/tls/localhost-cert.pem https://localhost:8543/
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
	if err := gozd.RegistHandler("secure", "demo.Handler", demo.Handler(version)); err != nil {
		fmt.Fprintf(os.Stderr, "https %s: %v\n", version, err)
		os.Exit(1)
	}
	<-daemonChan
}

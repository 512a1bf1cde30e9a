// Command gencert writes a throwaway self-signed ECDSA P-256 certificate and
// key for localhost, 127.0.0.1 and ::1, valid for ten years, for the https
// examples and tests. It is test material, not for real use.
//
//	go run ./examples/gencert [-dir examples/tls]
//
// It writes DIR/localhost-cert.pem and DIR/localhost-key.pem (mode 0600),
// replacing any that are there.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gozd/gozd/internal/testcert"
)

func main() {
	dir := flag.String("dir", filepath.Join("examples", "tls"), "directory to write localhost-cert.pem and localhost-key.pem to")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintf(os.Stderr, "gencert: %v\n", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	pair, err := testcert.New(10 * 365 * 24 * time.Hour)
	if err != nil {
		return fmt.Errorf("generate the pair: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Remove first: WriteFile keeps the mode of a file that exists.
	os.Remove(filepath.Join(dir, "localhost-key.pem"))
	keyPath, certPath, err := pair.Write(dir, "localhost-key.pem", "localhost-cert.pem")
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s\n", certPath, keyPath)
	return nil
}

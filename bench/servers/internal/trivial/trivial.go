// Package trivial holds the handlers every benchmarked server runs, so that
// the servers differ only in what serves them: a small fixed HTTP body and a
// tcp echo.
package trivial

import (
	"net"
	"net/http"
)

// VersionHeader carries the build's version in every HTTP response, so the
// bench can tell which build answered.
const VersionHeader = "X-Version"

// Handler answers every request with a small fixed body naming version.
func Handler(version string) http.Handler {
	body := []byte("hello from bench " + version + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set(VersionHeader, version)
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(body)
	})
}

// Echo writes back whatever it reads until the client closes. It does not
// stop on a drain: the bench holds a connection open across a reload and
// times how fast the old process leaves once the client closes it. A plain
// read/write loop, not io.Copy, so that no server gets splice(2) and another
// not.
func Echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

package gozd

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"runtime/debug"
)

// A handler that panics costs its own request and nothing else: the worker,
// the other requests on it and, where the response has not started, the
// connection live on. The operator learns of it at ERROR, with the stack,
// without -v.

// logPanic reports a recovered handler panic.
func (gs *groupServer) logPanic(v any, r *http.Request) {
	gs.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
		"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
}

// recoverHTTP is deferred around an http or https handler. A response not
// yet started becomes a 500 and the connection stays usable; one already
// under way is aborted with http.ErrAbortHandler, which makes net/http close
// the connection (HTTP/2: reset the stream) without a log line of its own; a
// hijacked connection is closed, as nobody else will. A handler's own
// http.ErrAbortHandler keeps its meaning: abort quietly.
//
// A handler that returned normally leaves w to be used again; after a
// panic w is left to the garbage collector.
func (gs *groupServer) recoverHTTP(w *drainingWriter, r *http.Request) {
	v := recover()
	if v == nil {
		w.release()
		return
	}
	if v == http.ErrAbortHandler {
		if w.hijackedConn != nil {
			w.hijackedConn.Close()
			return
		}
		panic(v)
	}
	gs.logPanic(v, r)
	switch {
	case w.hijackedConn != nil:
		w.hijackedConn.Close()
	case !w.wroteHeader:
		writePanicResponse(w)
	default:
		panic(http.ErrAbortHandler)
	}
}

// writePanicResponse answers 500 in place of whatever the handler had set
// up but not sent.
func writePanicResponse(w http.ResponseWriter) {
	h := w.Header()
	for k := range h {
		delete(h, k)
	}
	http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
}

// fcgiHandler is what an fcgi group serves, on accepted and on handed-over
// connections alike: the program's handler, guarded.
func (gs *groupServer) fcgiHandler(handler any) http.Handler {
	return gs.fcgiRecovering(handler.(http.Handler))
}

// fcgiRecovering guards an fcgi group's handler: net/http/fcgi does not
// recover, so a panic would end the worker and every request on it.
func (gs *groupServer) fcgiRecovering(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &headerWatcher{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				// FastCGI cannot reset one request of a kept
				// connection; it ends here, cut short.
				gs.log.Debug("handler aborted its response", "path", r.URL.Path)
			} else {
				gs.logPanic(v, r)
			}
			if !rw.wroteHeader {
				writePanicResponse(w)
			}
		}()
		h.ServeHTTP(rw, r)
	})
}

// headerWatcher records whether the response header has gone out. It keeps
// Flusher, the one optional interface net/http/fcgi's writer has, and
// Unwrap for http.ResponseController.
type headerWatcher struct {
	http.ResponseWriter
	wroteHeader bool
}

func (w *headerWatcher) WriteHeader(code int) {
	if code >= 200 {
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerWatcher) Write(p []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(p)
}

func (w *headerWatcher) Flush() {
	w.wroteHeader = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *headerWatcher) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serverErrorLog is the ErrorLog of a group's http.Server. net/http writes
// there both what an operator must see (a panic it recovered itself, as the
// HTTP/2 server does for a handler behind h2c; a handler writing its header
// twice) and routine noise (scanners failing TLS handshakes, clients
// vanishing), so each line gets its own level.
func serverErrorLog(l *slog.Logger) *log.Logger {
	return log.New(errorLogWriter{l}, "", 0)
}

type errorLogWriter struct{ log *slog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, "\n"))
	level := slog.LevelDebug
	switch {
	case bytes.Contains(p, []byte("panic serving")):
		level = slog.LevelError
	case bytes.Contains(p, []byte("superfluous response.WriteHeader")), bytes.Contains(p, []byte("response.Write on hijacked")):
		level = slog.LevelWarn
	}
	w.log.Log(context.Background(), level, "http server: "+msg)
	return len(p), nil
}

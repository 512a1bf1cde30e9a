package gozd

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
)

// logSettings are the log_level and log_format a logger follows; a reload
// changes them in place, so that every holder of the logger sees the
// change.
type logSettings struct {
	verbose bool // -v: debug whatever log_level says
	level   slog.LevelVar
	json    atomic.Bool
}

// apply takes cfg's log_level and log_format.
func (s *logSettings) apply(cfg *Config) {
	level, err := parseLogLevel(cfg.LogLevel)
	if err != nil {
		level = slog.LevelInfo // Validate let it through: a Config built in code
	}
	if s.verbose {
		level = min(level, slog.LevelDebug)
	}
	s.level.Set(level)
	s.json.Store(cfg.LogFormat == LogFormatJSON)
}

// newConfiguredLogger is newLogger following cfg's log_level and
// log_format, and whatever a later apply says.
func newConfiguredLogger(w io.Writer, verbose bool, role string, gen int, cfg *Config) (*slog.Logger, *logSettings) {
	s := &logSettings{verbose: verbose}
	s.apply(cfg)
	opts := &slog.HandlerOptions{Level: slog.LevelDebug} // the level is settingsHandler's
	h := &settingsHandler{s: s, text: slog.NewTextHandler(w, opts), json: slog.NewJSONHandler(w, opts)}
	l := slog.New(h).With("pid", os.Getpid(), "role", role)
	if gen > 0 {
		l = l.With("gen", gen)
	}
	return l, s
}

// settingsHandler writes text or JSON at the level its settings say.
type settingsHandler struct {
	s          *logSettings
	text, json slog.Handler
}

func (h *settingsHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.s.level.Level()
}

func (h *settingsHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.s.json.Load() {
		return h.json.Handle(ctx, r)
	}
	return h.text.Handle(ctx, r)
}

func (h *settingsHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &settingsHandler{s: h.s, text: h.text.WithAttrs(attrs), json: h.json.WithAttrs(attrs)}
}

func (h *settingsHandler) WithGroup(name string) slog.Handler {
	return &settingsHandler{s: h.s, text: h.text.WithGroup(name), json: h.json.WithGroup(name)}
}

// Logger returns the log of this worker for the program's own lines: it
// writes where gozd's log goes (through the master, into the log file or
// the journal), in the config's log_format, at its log_level, and every
// line carries role=worker, the worker's pid and its generation. Daemonize
// also makes it slog's default, so that slog.Info and the standard log
// package's output (log.Printf) go through it too. Outside a worker it
// returns slog.Default().
func Logger() *slog.Logger {
	std.mu.Lock()
	defer std.mu.Unlock()
	if std.log != nil {
		return std.log
	}
	return slog.Default()
}

package gozd

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// OpsConfig are the global directives for operating a daemon: how it
// leaves a load balancer and what its log looks like.
type OpsConfig struct {
	// ShutdownDelay (shutdown_delay) is how long a graceful stop (SIGTERM,
	// SIGQUIT, -s quit) first serves on, accepting as usual, with health
	// endpoints answering 503, before it drains: the time a load balancer
	// or Kubernetes needs to stop sending new connections. 0, the
	// default, drains at once.
	ShutdownDelay time.Duration
	// LogLevel (log_level) is debug, info, warn or error; "" = info (debug
	// with -v). A reload applies it.
	LogLevel string
	// LogFormat (log_format) is text or json; "" = text. A reload applies
	// it.
	LogFormat string
}

// The values log_format takes.
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

func init() {
	for _, d := range []string{"shutdown_delay", "log_level", "log_format"} {
		globalDirectives[d] = true
	}
	for _, d := range []string{"health", "metrics"} {
		groupDirectives[d] = true
	}
}

func (p *configParser) setOpsGlobal(name, value string) error {
	c := p.cfg
	switch name {
	case "shutdown_delay":
		d, err := parseDuration(value)
		if err != nil {
			return err
		}
		c.ShutdownDelay = d
	case "log_level":
		if _, err := parseLogLevel(value); err != nil {
			return err
		}
		c.LogLevel = value
	case "log_format":
		if value != LogFormatText && value != LogFormatJSON {
			return fmt.Errorf("bad log_format %q: want text or json", value)
		}
		c.LogFormat = value
	}
	return nil
}

// parseLogLevel reads a log_level value.
func parseLogLevel(v string) (slog.Level, error) {
	switch v {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("bad log_level %q: want debug, info, warn or error", v)
}

func (p *configParser) setOpsGroup(name, value string) error {
	g := &p.group
	if !strings.HasPrefix(value, "/") || strings.ContainsAny(value, "?#") {
		return fmt.Errorf("bad %s path %q: want an absolute URL path such as /healthz, without query", name, value)
	}
	switch name {
	case "health":
		g.Health = value
	case "metrics":
		g.Metrics = value
	}
	return nil
}

// checkOpsGroup checks the directives of this file in the group just read.
func (p *configParser) checkOpsGroup() error {
	g := &p.group
	for _, d := range []string{"health", "metrics"} {
		line, ok := p.seen[d]
		if !ok || g.Mode == "" {
			continue
		}
		if g.Mode != ModeHTTP && g.Mode != ModeHTTPS {
			return &ConfigError{File: p.cfg.File, Line: line, Err: fmt.Errorf("%s applies only to http and https groups; group %q is %s", d, g.Name, g.Mode)}
		}
	}
	if g.Health != "" && g.Health == g.Metrics {
		return &ConfigError{File: p.cfg.File, Line: p.seen["metrics"], Err: fmt.Errorf("group %q: health and metrics both on %s", g.Name, g.Health)}
	}
	return nil
}

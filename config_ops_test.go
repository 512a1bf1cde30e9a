package gozd

import (
	"strings"
	"testing"
	"time"
)

func TestParseOpsDirectives(t *testing.T) {
	cfg, err := ParseConfig("a.conf", strings.NewReader(`shutdown_delay 5s
log_level debug
log_format json
[web]
mode http
listen 127.0.0.1:0
health /healthz
metrics /metrics
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ShutdownDelay != 5*time.Second || cfg.LogLevel != "debug" || cfg.LogFormat != "json" || cfg.Groups[0].Health != "/healthz" || cfg.Groups[0].Metrics != "/metrics" {
		t.Errorf("parsed %+v %+v", cfg.OpsConfig, cfg.Groups[0])
	}
	for _, tc := range []struct{ conf, want string }{
		{"shutdown_delay soon\n[a]\nmode http\nlisten :0\n", "a.conf:1:"},
		{"log_level loud\n[a]\nmode http\nlisten :0\n", `a.conf:1: bad log_level "loud"`},
		{"log_format xml\n[a]\nmode http\nlisten :0\n", `a.conf:1: bad log_format "xml"`},
		{"[a]\nmode tcp\nlisten :0\nhealth /h\n", `a.conf:4: health applies only to http and https groups; group "a" is tcp`},
		{"[a]\nmode fcgi\nlisten :0\nmetrics /m\n", `a.conf:4: metrics applies only to http and https groups`},
		{"[a]\nmode http\nlisten :0\nhealth healthz\n", `a.conf:4: bad health path "healthz"`},
		{"[a]\nmode http\nlisten :0\nhealth /x\nmetrics /x\n", `a.conf:5: group "a": health and metrics both on /x`},
		{"[a]\nmode http\nlisten :0\nshutdown_delay 1s\n", `a.conf:4: directive "shutdown_delay" is global`},
	} {
		_, err := ParseConfig("a.conf", strings.NewReader(tc.conf))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%q) = %v, want %q", tc.conf, err, tc.want)
		}
	}
}

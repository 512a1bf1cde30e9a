package gozd

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gozd/gozd/internal/testcert"
)

// configFixtures makes a directory holding what the config tables refer to by
// relative path: a real key pair (key.pem, cert.pem), a key that does not
// match it (other-key.pem), a file that is not PEM (garbage.pem) and a
// directory (keydir), which no one can read as a file, root included.
// It returns the directory.
func configFixtures(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	pair, err := testcert.New(time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	other, err := testcert.New(time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	write("key.pem", pair.KeyPEM)
	write("cert.pem", pair.CertPEM)
	write("other-key.pem", other.KeyPEM)
	write("garbage.pem", []byte("not a pem file\n"))
	if err := os.Mkdir(filepath.Join(dir, "keydir"), 0o700); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// parseIn parses text as the file app.conf in dir.
func parseIn(dir, text string) (*Config, error) {
	return ParseConfig(filepath.Join(dir, "app.conf"), strings.NewReader(text))
}

const fullConfig = `# global directives
pidfile        /run/app.pid
logfile        /var/log/app.log
drain_timeout  45s      # note
ready_timeout  90
user           root
group          root
maxfds         65536

[Group0]
mode     tcp
listen   127.0.0.1:9000

[Group1]
mode     [fcgi]
listen   [/tmp/app.sock]
chmod    0660

[Group2]
mode     https
listen   8443
key      key.pem
cert     cert.pem
`

func TestParseConfigFull(t *testing.T) {
	dir := configFixtures(t)
	c, err := parseIn(dir, fullConfig)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File:         filepath.Join(dir, "app.conf"),
		PidFile:      "/run/app.pid",
		LogFile:      "/var/log/app.log",
		DrainTimeout: 45 * time.Second,
		ReadyTimeout: 90 * time.Second,
		User:         "root",
		UserGroup:    "root",
		MaxFDs:       65536,
		StartBoost:   DefaultStartBoost,
		Groups: []GroupConfig{
			{Name: "Group0", Mode: ModeTCP, Network: "tcp", Address: "127.0.0.1:9000", Line: 10},
			{Name: "Group1", Mode: ModeFCGI, Network: "unix", Address: "/tmp/app.sock", Chmod: 0o660, Line: 14},
			{Name: "Group2", Mode: ModeHTTPS, Network: "tcp", Address: ":8443",
				Key: filepath.Join(dir, "key.pem"), Cert: filepath.Join(dir, "cert.pem"), Line: 19},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if c.drainTimeout() != 45*time.Second || c.readyTimeout() != 90*time.Second {
		t.Errorf("timeouts = %v, %v; want 45s, 90s", c.drainTimeout(), c.readyTimeout())
	}
}

func TestParseConfigListenForms(t *testing.T) {
	dir := t.TempDir()
	long := "/" + strings.Repeat("s", maxUnixPath-1)
	tests := []struct {
		listen, network, address string
	}{
		{"9000", "tcp", ":9000"},
		{"09000", "tcp", ":9000"},
		{":9000", "tcp", ":9000"},
		{"[:9000]", "tcp", ":9000"},
		{"127.0.0.1:9000", "tcp", "127.0.0.1:9000"},
		{"127.0.0.1:0", "tcp", "127.0.0.1:0"},
		{"0.0.0.0:65535", "tcp", "0.0.0.0:65535"},
		{"localhost:80", "tcp", "localhost:80"},
		{"LocalHost:80", "tcp", "localhost:80"},
		{"[::1]:9000", "tcp", "[::1]:9000"},
		{"[[::1]:9000]", "tcp", "[::1]:9000"},
		{"[0:0::1]:9000", "tcp", "[::1]:9000"},
		{"[::]:80", "tcp", "[::]:80"},
		{"[1.2.3.4]:80", "tcp", "1.2.3.4:80"},
		{"/tmp/app.sock", "unix", "/tmp/app.sock"},
		{"[/tmp/app.sock]", "unix", "/tmp/app.sock"},
		{"/tmp//x/../app.sock", "unix", "/tmp/app.sock"},
		{"/tmp/a#b.sock", "unix", "/tmp/a#b.sock"},
		{"unix:/tmp/app.sock", "unix", "/tmp/app.sock"},
		{"[unix:/tmp/app.sock]", "unix", "/tmp/app.sock"},
		{"unix:app.sock", "unix", filepath.Join(dir, "app.sock")},
		{"run/app.sock", "unix", filepath.Join(dir, "run/app.sock")},
		{"./app.sock", "unix", filepath.Join(dir, "app.sock")},
		{long, "unix", long},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			c, err := parseIn(dir, "[g]\nmode tcp\nlisten "+tt.listen+"\n")
			if err != nil {
				t.Fatal(err)
			}
			g := c.Groups[0]
			if g.Network != tt.network || g.Address != tt.address {
				t.Errorf("listen %s = %s %q; want %s %q", tt.listen, g.Network, g.Address, tt.network, tt.address)
			}
		})
	}
}

func TestParseConfigAccepts(t *testing.T) {
	dir := configFixtures(t)
	abs := func(p string) string { return filepath.Join(dir, p) }
	tests := []struct {
		name  string
		text  string
		check func(*Config) bool
	}{
		{"defaults", "[a]\nmode http\nlisten 80\n", func(c *Config) bool {
			return c.PidFile == "" && c.LogFile == "" && c.DrainTimeout == 0 && c.ReadyTimeout == 0 &&
				c.User == "" && c.UserGroup == "" && c.MaxFDs == 0 &&
				c.drainTimeout() == DefaultDrainTimeout && c.readyTimeout() == DefaultReadyTimeout &&
				c.Groups[0].Chmod == 0 && c.Groups[0].Key == ""
		}},
		{"comments and blank lines", "# top\n\n  # indented\n[a] # web\n\tmode\thttp # m\n  listen  80\t# port\n#\n", nil},
		{"comment after value", "[a]\nmode http   # note\nlisten 80   # note\n", func(c *Config) bool {
			return c.Groups[0].Mode == ModeHTTP && c.Groups[0].Address == ":80"
		}},
		{"crlf and bom", "\uFEFFdrain_timeout 5s\r\n[a]\r\nmode tcp\r\nlisten 80\r\n", func(c *Config) bool {
			return c.DrainTimeout == 5*time.Second && c.Groups[0].Mode == ModeTCP
		}},
		{"no trailing newline", "[a]\nmode tcp\nlisten 80", nil},
		{"spaces inside header", "[ a.b_c-1 ]\nmode tcp\nlisten 80\n", func(c *Config) bool {
			return c.Groups[0].Name == "a.b_c-1"
		}},
		{"bracketed values", "drain_timeout [10s]\n[a]\nmode [http]\nlisten [80]\n", func(c *Config) bool {
			return c.DrainTimeout == 10*time.Second && c.Groups[0].Mode == ModeHTTP
		}},
		{"bare seconds", "drain_timeout 7\nready_timeout 00120\n[a]\nmode tcp\nlisten 80\n", func(c *Config) bool {
			return c.DrainTimeout == 7*time.Second && c.ReadyTimeout == 2*time.Minute
		}},
		{"go durations", "drain_timeout 1m30s\nready_timeout 250ms\n[a]\nmode tcp\nlisten 80\n", func(c *Config) bool {
			return c.DrainTimeout == 90*time.Second && c.ReadyTimeout == 250*time.Millisecond
		}},
		{"numeric ids", "user 0\ngroup 0\n[a]\nmode tcp\nlisten 80\n", func(c *Config) bool {
			return c.User == "0" && c.UserGroup == "0"
		}},
		{"relative pidfile and logfile", "pidfile run/app.pid\nlogfile app.log\n[a]\nmode tcp\nlisten 80\n", func(c *Config) bool {
			return c.PidFile == abs("run/app.pid") && c.LogFile == abs("app.log")
		}},
		{"chmod without leading zero", "[a]\nmode fcgi\nlisten /tmp/a.sock\nchmod 660\n", func(c *Config) bool {
			return c.Groups[0].Chmod == 0o660
		}},
		{"chmod before listen", "[a]\nchmod 0600\nmode fcgi\nlisten /tmp/a.sock\n", func(c *Config) bool {
			return c.Groups[0].Chmod == 0o600
		}},
		{"owner user and group", "[a]\nmode fcgi\nlisten /tmp/a.sock\nowner root:root\n", func(c *Config) bool {
			return c.Groups[0].Owner == "root:root"
		}},
		{"owner user only", "[a]\nmode fcgi\nlisten /tmp/a.sock\nowner [root]\n", func(c *Config) bool {
			return c.Groups[0].Owner == "root"
		}},
		{"owner group only, numeric", "[a]\nowner :0\nmode fcgi\nlisten /tmp/a.sock\n", func(c *Config) bool {
			return c.Groups[0].Owner == ":0"
		}},
		{"owner numeric ids", "[a]\nmode fcgi\nlisten /tmp/a.sock\nowner 12345:54321\nchmod 0660\n", func(c *Config) bool {
			return c.Groups[0].Owner == "12345:54321" && c.Groups[0].Chmod == 0o660
		}},
		{"https keys before mode", "[a]\nkey key.pem\ncert cert.pem\nlisten 443\nmode https\n", func(c *Config) bool {
			return c.Groups[0].Key == abs("key.pem") && c.Groups[0].Cert == abs("cert.pem")
		}},
		{"https absolute key", "[a]\nmode https\nlisten 443\nkey " + abs("key.pem") + "\ncert [" + abs("cert.pem") + "]\n", nil},
		{"port 0 twice", "[a]\nmode tcp\nlisten 127.0.0.1:0\n[b]\nmode tcp\nlisten 127.0.0.1:0\n", nil},
		{"same port on two hosts", "[a]\nmode tcp\nlisten 127.0.0.1:80\n[b]\nmode tcp\nlisten 127.0.0.2:80\n", nil},
		{"same port tcp and unix names", "[a]\nmode tcp\nlisten 80\n[b]\nmode tcp\nlisten unix:80\n", func(c *Config) bool {
			return c.Groups[1].Network == "unix" && c.Groups[1].Address == abs("80")
		}},
		{"group order kept", "[z]\nmode tcp\nlisten 1\n[a]\nmode http\nlisten 2\n[m]\nmode fcgi\nlisten 3\n", func(c *Config) bool {
			return len(c.Groups) == 3 && c.Groups[0].Name == "z" && c.Groups[1].Name == "a" && c.Groups[2].Name == "m" &&
				c.Groups[2].Line == 7
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseIn(dir, tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil && !tt.check(c) {
				t.Errorf("parsed %+v", c)
			}
		})
	}
}

// configErrorTests are files ParseConfig must refuse, with the line the
// error must point at (0: none) and a word the message must contain. Relative
// key and cert paths refer to configFixtures.
var configErrorTests = []struct {
	name string
	text string
	line int
	word string
}{
	{"empty file", "", 0, "no groups"},
	{"only globals", "pidfile /run/a.pid\n", 0, "no groups"},
	{"only comments", "# nothing\n\n", 0, "no groups"},
	{"unknown directive", "[a]\nmode tcp\nlisten 80\nport 80\n", 4, `unknown directive "port"`},
	{"unknown global", "pid_file /a\n[a]\nmode tcp\nlisten 80\n", 1, "unknown directive"},
	{"upper-case directive", "[a]\nMode tcp\nlisten 80\n", 2, "unknown directive"},
	{"no value", "pidfile\n[a]\nmode tcp\nlisten 80\n", 1, "needs a value"},
	{"empty brackets", "[a]\nmode []\nlisten 80\n", 2, "needs a value"},
	{"two values", "[a]\nmode tcp\nlisten 127.0.0.1 80\n", 3, "one value expected"},
	{"bracketed two values", "[a]\nmode [tcp http]\nlisten 80\n", 2, "one value expected"},
	{"duplicate global", "pidfile /a\nlogfile /b\npidfile /c\n[a]\nmode tcp\nlisten 80\n", 3, "line 1"},
	{"duplicate in group", "[a]\nmode tcp\nlisten 80\nmode http\n", 4, "duplicate directive"},
	{"unknown mode", "[a]\nmode ftp\nlisten 80\n", 2, "unknown mode"},
	{"mode list", "[a]\nmode sctp\nlisten 80\n", 2, "tcp, http, https, fcgi or udp"},
	{"upper-case mode", "[a]\nmode TCP\nlisten 80\n", 2, "unknown mode"},
	{"missing mode", "[a]\nlisten 80\n[b]\nmode tcp\nlisten 81\n", 1, "no mode"},
	{"missing listen", "[a]\nmode tcp\n\n[b]\nmode tcp\nlisten 81\n", 1, "no listen"},
	{"missing listen last", "[a]\nmode tcp\nlisten 80\n[b]\nmode tcp\n", 4, "no listen"},
	{"https without key and cert", "[a]\nmode https\nlisten 443\n", 1, "needs a key and a cert"},
	{"https without cert", "[a]\nmode https\nlisten 443\nkey key.pem\n", 1, "needs a cert"},
	{"https without key", "[a]\nmode https\nlisten 443\ncert cert.pem\n", 1, "needs a key"},
	{"key on http", "[a]\nmode http\nlisten 80\nkey key.pem\n", 4, "only to https"},
	{"cert on tcp", "[a]\ncert cert.pem\nmode tcp\nlisten 80\n", 2, "only to https"},
	{"key on fcgi", "[a]\nmode fcgi\nlisten /tmp/a.sock\nkey key.pem\ncert cert.pem\n", 4, "only to https"},
	{"same address", "[a]\nmode tcp\nlisten 127.0.0.1:80\n\n[b]\nmode http\nlisten 127.0.0.1:80\n", 5, `groups "a" (line 1) and "b" both listen`},
	{"same address two spellings", "[a]\nmode tcp\nlisten 80\n[b]\nmode http\nlisten :080\n", 4, "both listen"},
	{"same ipv6 two spellings", "[a]\nmode tcp\nlisten [::1]:80\n[b]\nmode http\nlisten [0::1]:80\n", 4, "both listen"},
	{"same socket", "[a]\nmode fcgi\nlisten /tmp/a.sock\n[b]\nmode fcgi\nlisten unix:/tmp/x/../a.sock\n", 4, "both listen"},
	{"unterminated header", "[unterminated\nmode tcp\nlisten 80\n", 1, "unterminated group header"},
	{"empty header", "[]\nmode tcp\nlisten 80\n", 1, "empty group name"},
	{"bad group name", "[a b]\nmode tcp\nlisten 80\n", 1, "letters, digits"},
	{"bad group name char", "[a/b]\nmode tcp\nlisten 80\n", 1, "bad group name"},
	{"text after header", "[a] web\nmode tcp\nlisten 80\n", 1, "after group header"},
	{"duplicate group", "[a]\nmode tcp\nlisten 80\n[b]\nmode tcp\nlisten 81\n[a]\nmode tcp\nlisten 82\n", 7, "first at line 1"},
	{"global in group", "[a]\nmode tcp\nlisten 80\npidfile /a\n", 4, "is global and must come before the first group"},
	{"group directive in group", "[a]\nmode tcp\nlisten 80\ngroup root\n", 4, "global"},
	{"group directive before group", "mode tcp\n[a]\nmode tcp\nlisten 80\n", 1, "belongs in a group"},
	{"bad listen", "[a]\nmode tcp\nlisten nowhere\n", 3, "host:port, :port, port"},
	{"bad listen ipv6 without port", "[a]\nmode tcp\nlisten [::1]\n", 3, "bad listen address"},
	{"port too big", "[a]\nmode tcp\nlisten 65536\n", 3, "bad port"},
	{"port too big with host", "[a]\nmode tcp\nlisten localhost:99999\n", 3, "0 to 65535"},
	{"port not a number", "[a]\nmode tcp\nlisten localhost:http\n", 3, "bad port"},
	{"port negative", "[a]\nmode tcp\nlisten localhost:-1\n", 3, "bad port"},
	{"port empty", "[a]\nmode tcp\nlisten localhost:\n", 3, "bad port"},
	{"bad host", "[a]\nmode tcp\nlisten bad!host:80\n", 3, "bad host"},
	{"empty unix path", "[a]\nmode fcgi\nlisten unix:\n", 3, "empty unix socket path"},
	{"unix path too long", "[a]\nmode fcgi\nlisten /" + strings.Repeat("s", maxUnixPath) + "\n", 3, "at most 107"},
	{"relative unix path too long", "[a]\nmode fcgi\nlisten unix:" + strings.Repeat("s", maxUnixPath) + "\n", 3, "at most 107"},
	{"chmod not octal", "[a]\nmode fcgi\nlisten /tmp/a.sock\nchmod 0689\n", 4, "bad chmod"},
	{"chmod too big", "[a]\nmode fcgi\nlisten /tmp/a.sock\nchmod 01000\n", 4, "bad chmod"},
	{"chmod words", "[a]\nmode fcgi\nlisten /tmp/a.sock\nchmod rw-rw----\n", 4, "octal"},
	{"chmod zero", "[a]\nmode fcgi\nlisten /tmp/a.sock\nchmod 0\n", 4, "unusable"},
	{"chmod on tcp", "[a]\nmode http\nchmod 0660\nlisten 80\n", 3, "only to unix sockets"},
	{"owner on tcp", "[a]\nmode http\nlisten 80\nowner root:root\n", 4, "owner applies only to unix sockets"},
	{"owner unknown user", "[a]\nmode fcgi\nlisten /tmp/a.sock\nowner no-such-user-gozd:root\n", 4, `unknown user "no-such-user-gozd"`},
	{"owner unknown group", "[a]\nmode fcgi\nlisten /tmp/a.sock\nowner root:no-such-group-gozd\n", 4, `unknown group "no-such-group-gozd"`},
	{"owner unknown group only", "[a]\nowner :no-such-group-gozd\nmode fcgi\nlisten /tmp/a.sock\n", 2, `unknown group "no-such-group-gozd"`},
	{"owner empty group", "[a]\nmode fcgi\nlisten /tmp/a.sock\nowner root:\n", 4, "bad owner"},
	{"owner colon only", "[a]\nmode fcgi\nlisten /tmp/a.sock\nowner :\n", 4, "user:group, user or :group"},
	{"owner three parts", "[a]\nmode fcgi\nlisten /tmp/a.sock\nowner root:root:root\n", 4, "bad owner"},
	{"owner user id too big", "[a]\nmode fcgi\nlisten /tmp/a.sock\nowner 99999999999\n", 4, "bad user id"},
	{"owner duplicate", "[a]\nmode fcgi\nlisten /tmp/a.sock\nowner root\nowner :root\n", 5, "duplicate directive"},
	{"owner global", "owner root\n[a]\nmode fcgi\nlisten /tmp/a.sock\n", 1, "belongs in a group"},
	{"drain_timeout zero", "drain_timeout 0\n[a]\nmode tcp\nlisten 80\n", 1, "greater than 0"},
	{"drain_timeout 0s", "drain_timeout 0s\n[a]\nmode tcp\nlisten 80\n", 1, "cut every connection"},
	{"drain_timeout negative", "drain_timeout -5s\n[a]\nmode tcp\nlisten 80\n", 1, `bad duration "-5s"`},
	{"drain_timeout garbage", "drain_timeout soon\n[a]\nmode tcp\nlisten 80\n", 1, `bad duration "soon"`},
	{"drain_timeout negative seconds", "drain_timeout -5\n[a]\nmode tcp\nlisten 80\n", 1, "bad duration"},
	{"ready_timeout zero", "ready_timeout 0ms\n[a]\nmode tcp\nlisten 80\n", 1, "greater than 0"},
	{"ready_timeout overflow", "ready_timeout 99999999999999999999\n[a]\nmode tcp\nlisten 80\n", 1, "bad duration"},
	{"ready_timeout seconds overflow", "ready_timeout 9999999999\n[a]\nmode tcp\nlisten 80\n", 1, "too long"},
	{"maxfds zero", "maxfds 0\n[a]\nmode tcp\nlisten 80\n", 1, "bad maxfds"},
	{"maxfds negative", "maxfds -1\n[a]\nmode tcp\nlisten 80\n", 1, "positive integer"},
	{"maxfds words", "maxfds many\n[a]\nmode tcp\nlisten 80\n", 1, "bad maxfds"},
	{"unknown user", "user no-such-user-gozd\n[a]\nmode tcp\nlisten 80\n", 1, `unknown user "no-such-user-gozd"`},
	{"unknown unix group", "group no-such-group-gozd\n[a]\nmode tcp\nlisten 80\n", 1, `unknown group "no-such-group-gozd"`},
	{"user id too big", "user 99999999999\n[a]\nmode tcp\nlisten 80\n", 1, "bad user id"},
	{"missing key", "[a]\nmode https\nlisten 443\nkey missing.pem\ncert cert.pem\n", 4, "missing.pem"},
	{"key is a directory", "[a]\nmode https\nlisten 443\nkey keydir\ncert cert.pem\n", 4, "reading key"},
	{"key is a device", "[a]\nmode https\nlisten 443\nkey /dev/null\ncert cert.pem\n", 4, "not a regular file"},
	{"cert is stdin", "[a]\nmode https\nlisten 443\nkey key.pem\ncert /dev/stdin\n", 5, "reading cert"},
	{"missing cert", "[a]\nmode https\nlisten 443\nkey key.pem\ncert missing.pem\n", 5, "reading cert"},
	{"cert is a directory", "[a]\nmode https\nlisten 443\ncert keydir\nkey key.pem\n", 4, "keydir"},
	{"mismatched pair", "[a]\nmode https\nlisten 443\nkey other-key.pem\ncert cert.pem\n", 5, "bad key pair"},
	{"cert not pem", "[a]\nmode https\nlisten 443\ncert garbage.pem\nkey key.pem\n", 4, "bad key pair"},
	{"key swapped with cert", "[a]\nmode https\nlisten 443\nkey cert.pem\ncert key.pem\n", 5, "bad key pair"},
}

func TestParseConfigErrors(t *testing.T) {
	dir := configFixtures(t)
	file := filepath.Join(dir, "app.conf")
	for _, tt := range configErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseIn(dir, tt.text)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *ConfigError: %v", err, err)
			}
			if ce.File != file || ce.Line != tt.line {
				t.Errorf("error at %s:%d; want %s:%d (%v)", ce.File, ce.Line, file, tt.line, err)
			}
			prefix := file + ": "
			if tt.line > 0 {
				prefix = file + ":" + strconv.Itoa(tt.line) + ": "
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.word) {
				t.Errorf("error %q; want prefix %q and %q in it", msg, prefix, tt.word)
			}
			if rest := strings.TrimPrefix(msg, prefix); rest != "" && rest[:1] != strings.ToLower(rest[:1]) {
				t.Errorf("message %q does not start in lower case", rest)
			}
		})
	}
}

func TestParseConfigKeyErrorWrapsOSError(t *testing.T) {
	dir := configFixtures(t)
	_, err := parseIn(dir, "[a]\nmode https\nlisten 443\nkey missing.pem\ncert cert.pem\n")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v does not wrap fs.ErrNotExist", err)
	}
}

func TestParseConfigWithoutName(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig("", strings.NewReader("[a]\nmode fcgi\nlisten unix:a.sock\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.File != "" || c.Groups[0].Address != filepath.Join(wd, "a.sock") {
		t.Errorf("File %q, Address %q; want \"\" and a path in %s", c.File, c.Groups[0].Address, wd)
	}
	_, err = ParseConfig("", strings.NewReader("[a]\nmode ftp\n"))
	if err == nil || err.Error() != `line 2: unknown mode "ftp": use tcp, http, https, fcgi or udp` {
		t.Errorf("error = %v", err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := configFixtures(t)
	text := "pidfile app.pid\n[web]\nmode https\nlisten 127.0.0.1:0\nkey key.pem\ncert cert.pem\n"
	if err := os.WriteFile(filepath.Join(dir, "app.conf"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	c, err := LoadConfig("app.conf")
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir may sit behind a symlink; Abs does not resolve it, nor should it.
	if c.File != filepath.Join(dir, "app.conf") || c.PidFile != filepath.Join(dir, "app.pid") {
		t.Errorf("File %q, PidFile %q; want both in %s", c.File, c.PidFile, dir)
	}
	g, ok := c.Group("web")
	if !ok || g.Key != filepath.Join(dir, "key.pem") {
		t.Errorf("Group(web) = %+v, %v", g, ok)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	dir := configFixtures(t)
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("[a]\nmode tcp\nlisten 80\nmode http\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path   string
		line   int
		is     error
		prefix string
	}{
		{filepath.Join(dir, "missing.conf"), 0, fs.ErrNotExist, filepath.Join(dir, "missing.conf") + ": "},
		{filepath.Join(dir, "keydir"), 0, nil, filepath.Join(dir, "keydir") + ": reading config"},
		{bad, 4, nil, bad + ":4: duplicate directive"},
	}
	for _, tt := range tests {
		_, err := LoadConfig(tt.path)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Line != tt.line || ce.File != tt.path {
			t.Errorf("LoadConfig(%s) = %#v; want a *ConfigError at line %d", tt.path, err, tt.line)
			continue
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("LoadConfig(%s) = %v; want it to wrap %v", tt.path, err, tt.is)
		}
		if !strings.HasPrefix(err.Error(), tt.prefix) {
			t.Errorf("LoadConfig(%s) = %q; want prefix %q", tt.path, err, tt.prefix)
		}
	}
}

func TestConfigErrorString(t *testing.T) {
	cause := errors.New("boom")
	tests := []struct {
		err  *ConfigError
		want string
	}{
		{&ConfigError{File: "/a.conf", Line: 3, Err: cause}, "/a.conf:3: boom"},
		{&ConfigError{File: "/a.conf", Err: cause}, "/a.conf: boom"},
		{&ConfigError{Line: 3, Err: cause}, "line 3: boom"},
		{&ConfigError{Err: cause}, "boom"},
		{&ConfigError{File: "/a.conf", Line: 3}, "/a.conf:3: invalid configuration"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q; want %q", got, tt.want)
		}
	}
	if err := (&ConfigError{Err: cause}); !errors.Is(err, cause) {
		t.Error("ConfigError does not unwrap to its cause")
	}
}

func TestValidate(t *testing.T) {
	tcp := func(name, addr string) GroupConfig {
		return GroupConfig{Name: name, Mode: ModeTCP, Network: "tcp", Address: addr}
	}
	withGroup := func(g GroupConfig, edit func(*GroupConfig)) GroupConfig {
		edit(&g)
		return g
	}
	tests := []struct {
		name string
		cfg  Config
		line int
		word string // "" = valid
	}{
		{"empty", Config{}, 0, ""},
		{"valid", Config{Groups: []GroupConfig{
			tcp("a", "127.0.0.1:9000"),
			{Name: "b", Mode: ModeHTTPS, Network: "tcp", Address: ":8443", Key: "k.pem", Cert: "c.pem"},
			{Name: "c", Mode: ModeFCGI, Network: "unix", Address: "/tmp/c.sock", Chmod: 0o600},
			tcp("d", "127.0.0.1:0"), tcp("e", "127.0.0.1:0"),
		}}, 0, ""},
		{"duplicate name", Config{File: "/x.conf", Groups: []GroupConfig{
			withGroup(tcp("a", ":1"), func(g *GroupConfig) { g.Line = 2 }),
			withGroup(tcp("a", ":2"), func(g *GroupConfig) { g.Line = 9 }),
		}}, 9, "duplicate group \"a\" (line 2)"},
		{"no mode", Config{Groups: []GroupConfig{{Name: "a", Network: "tcp", Address: ":1", Line: 4}}}, 4, "no mode"},
		{"unknown mode", Config{Groups: []GroupConfig{withGroup(tcp("a", ":1"), func(g *GroupConfig) { g.Mode = "sctp" })}}, 0, "unknown mode"},
		{"no listen", Config{Groups: []GroupConfig{{Name: "a", Mode: ModeTCP}}}, 0, "no listen"},
		{"bad network", Config{Groups: []GroupConfig{withGroup(tcp("a", ":1"), func(g *GroupConfig) { g.Network = "sctp" })}}, 0, "bad network"},
		{"no network", Config{Groups: []GroupConfig{withGroup(tcp("a", ":1"), func(g *GroupConfig) { g.Network = "" })}}, 0, "bad network"},
		{"bad tcp address", Config{Groups: []GroupConfig{tcp("a", "localhost")}}, 0, "bad tcp address"},
		{"bad tcp port", Config{Groups: []GroupConfig{tcp("a", "localhost:x")}}, 0, "bad port"},
		{"long unix path", Config{Groups: []GroupConfig{{Name: "a", Mode: ModeFCGI, Network: "unix",
			Address: "/" + strings.Repeat("s", maxUnixPath)}}}, 0, "at most 107"},
		{"https without key", Config{Groups: []GroupConfig{{Name: "a", Mode: ModeHTTPS, Network: "tcp", Address: ":1", Cert: "c"}}}, 0, "needs a key"},
		{"key on http", Config{Groups: []GroupConfig{{Name: "a", Mode: ModeHTTP, Network: "tcp", Address: ":1", Key: "k"}}}, 0, "only to https"},
		{"chmod on tcp", Config{Groups: []GroupConfig{withGroup(tcp("a", ":1"), func(g *GroupConfig) { g.Chmod = 0o600 })}}, 0, "only to unix"},
		{"owner on tcp", Config{Groups: []GroupConfig{withGroup(tcp("a", ":1"), func(g *GroupConfig) { g.Owner = "root" })}}, 0, "only to unix"},
		{"bad owner", Config{Groups: []GroupConfig{{Name: "a", Mode: ModeFCGI, Network: "unix", Address: "/a", Owner: "a:b:c"}}}, 0, "bad owner"},
		{"owner not looked up", Config{Groups: []GroupConfig{{Name: "a", Mode: ModeFCGI, Network: "unix", Address: "/a", Owner: "no-such-user-gozd"}}}, 0, ""},
		{"chmod out of range", Config{Groups: []GroupConfig{{Name: "a", Mode: ModeFCGI, Network: "unix", Address: "/a", Chmod: 0o1777}}}, 0, "out of range"},
		{"bad name", Config{Groups: []GroupConfig{tcp("a b", ":1")}}, 0, "bad group name"},
		{"same address", Config{Groups: []GroupConfig{tcp("a", ":1"), tcp("b", ":1")}}, 0, "both listen on :1"},
		{"all addresses overlap one", Config{Groups: []GroupConfig{tcp("a", ":1"), tcp("b", "127.0.0.1:1")}}, 0, "overlapping addresses"},
		{"ipv6 wildcard overlaps ipv4", Config{Groups: []GroupConfig{tcp("a", "127.0.0.1:1"), tcp("b", "[::]:1")}}, 0, "overlapping addresses"},
		{"ipv4 wildcard overlaps ipv4", Config{Groups: []GroupConfig{tcp("a", "0.0.0.0:1"), tcp("b", "127.0.0.2:1")}}, 0, "overlapping addresses"},
		{"ipv4 wildcard and ipv6 loopback", Config{Groups: []GroupConfig{tcp("a", "0.0.0.0:1"), tcp("b", "[::1]:1")}}, 0, ""},
		{"other port", Config{Groups: []GroupConfig{tcp("a", ":1"), tcp("b", "127.0.0.1:2")}}, 0, ""},
		{"same socket", Config{Groups: []GroupConfig{
			{Name: "a", Mode: ModeFCGI, Network: "unix", Address: "/tmp/a.sock"},
			{Name: "b", Mode: ModeFCGI, Network: "unix", Address: "/tmp//a.sock"},
		}}, 0, "both listen"},
		{"negative drain", Config{DrainTimeout: -time.Second}, 0, "drain_timeout"},
		{"negative ready", Config{ReadyTimeout: -time.Second}, 0, "ready_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.word == "" {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate() = %v; want a *ConfigError", err)
			}
			if ce.Line != tt.line || ce.File != tt.cfg.File || !strings.Contains(err.Error(), tt.word) {
				t.Errorf("Validate() = %q at line %d; want %q at line %d", err, ce.Line, tt.word, tt.line)
			}
		})
	}
}

func TestConfigGroupAndString(t *testing.T) {
	c := &Config{Groups: []GroupConfig{
		{Name: "Group0", Mode: ModeHTTP, Network: "tcp", Address: "127.0.0.1:9000"},
		{Name: "app", Mode: ModeFCGI, Network: "unix", Address: "/tmp/app.sock"},
	}}
	g, ok := c.Group("app")
	if !ok || g != &c.Groups[1] {
		t.Fatalf("Group(app) = %p, %v; want %p", g, ok, &c.Groups[1])
	}
	if _, ok := c.Group("nope"); ok {
		t.Error("Group(nope) found a group")
	}
	for _, tt := range []struct {
		g    GroupConfig
		want string
	}{
		{c.Groups[0], `group "Group0" (http on 127.0.0.1:9000)`},
		{c.Groups[1], `group "app" (fcgi on /tmp/app.sock)`},
		{GroupConfig{Name: "bare"}, `group "bare"`},
	} {
		if got := tt.g.String(); got != tt.want {
			t.Errorf("String() = %q; want %q", got, tt.want)
		}
	}
	var zero *Config
	if zero.drainTimeout() != DefaultDrainTimeout || zero.readyTimeout() != DefaultReadyTimeout {
		t.Error("nil Config does not give the default timeouts")
	}
}

func FuzzParseConfig(f *testing.F) {
	dir := configFixtures(f)
	f.Add(fullConfig)
	for _, tt := range configErrorTests {
		f.Add(tt.text)
	}
	f.Add("[a]\nmode fcgi\nlisten [unix:run/a.sock]\nchmod 660\n[b]\nmode https\nlisten [[::1]:0]\nkey key.pem\ncert cert.pem\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := parseIn(dir, text)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *ConfigError: %v", err, err)
			}
			return
		}
		if len(c.Groups) == 0 {
			t.Fatal("accepted a config without groups")
		}
		names := map[string]bool{}
		addrs := map[string]bool{}
		for _, g := range c.Groups {
			if !g.Mode.valid() {
				t.Fatalf("%s: mode %q", &g, g.Mode)
			}
			if names[g.Name] {
				t.Fatalf("%s: name used twice", &g)
			}
			names[g.Name] = true
			if g.Mode == ModeHTTPS && (g.Key == "" || g.Cert == "") {
				t.Fatalf("%s: no key or cert", &g)
			}
			switch g.Network {
			case "tcp", "udp":
				_, port, err := net.SplitHostPort(g.Address)
				if err != nil {
					t.Fatalf("%s: %v", &g, err)
				}
				if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
					t.Fatalf("%s: port %q", &g, port)
				}
				if port == "0" {
					continue
				}
			case "unix":
				if !filepath.IsAbs(g.Address) || len(g.Address) > maxUnixPath {
					t.Fatalf("%s: socket path %q", &g, g.Address)
				}
			default:
				t.Fatalf("%s: network %q", &g, g.Network)
			}
			key := g.Network + " " + g.Address
			if addrs[key] {
				t.Fatalf("%s: address used twice", &g)
			}
			addrs[key] = true
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate() on a parsed config: %v", err)
		}
	})
}

// TestParseConfigEveryError: one parse reports every independent error, in
// line order, each at its line, and none that only follows from another.
func TestParseConfigEveryError(t *testing.T) {
	conf := strings.Join([]string{
		"drain_timeout 10x",      // 1: bad duration
		"[web]",                  // 2
		"mode gopher",            // 3: unknown mode (and not also "no mode")
		"listen 127.0.0.1:0",     // 4
		"[api]",                  // 5
		"mode http",              // 6
		"listen 127.0.0.1:99999", // 7: bad port (and not also "no listen")
		"[web]",                  // 8: duplicate group
		"mode http",              // 9
		"listen 127.0.0.1:0",     // 10
		"[ok]",                   // 11
		"mode http",              // 12
		"listen 127.0.0.1:0",     // 13
		"colour blue",            // 14: unknown directive
		"[tcp]",                  // 15
		"mode tcp",               // 16
		"listen 127.0.0.1:0",     // 17
		"chmod 0660",             // 18: chmod on tcp
		"[two]",                  // 19
		"mode http",              // 20
		"listen 127.0.0.1:0",     // 21
		"protocols h2",           // 22: h2 needs TLS (one group, two errors)
		"owner root",             // 23: owner on tcp
	}, "\n")
	_, err := ParseConfig("/etc/app.conf", strings.NewReader(conf))
	var list ConfigErrors
	if !errors.As(err, &list) {
		t.Fatalf("ParseConfig = %#v; want ConfigErrors", err)
	}
	var lines []int
	for _, ce := range list {
		lines = append(lines, ce.Line)
		if ce.File != "/etc/app.conf" {
			t.Errorf("error %q names file %q", ce, ce.File)
		}
	}
	if want := []int{1, 3, 7, 8, 14, 18, 22, 23}; !slices.Equal(lines, want) {
		t.Errorf("errors at lines %v, want %v:\n%v", lines, want, err)
	}
	var first *ConfigError
	if !errors.As(err, &first) || first.Line != 1 {
		t.Errorf("errors.As finds %v first; want the error of line 1", first)
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != len(lines) {
		t.Errorf("Error() has %d lines, want one an error:\n%s", got, err)
	}

	// Errors across groups are reported together too, once every group
	// parsed.
	_, err = ParseConfig("/etc/app.conf", strings.NewReader("[a]\nmode http\nlisten 127.0.0.1:9000\n[b]\nmode http\nlisten 127.0.0.1:9000\n[c]\nmode tcp\nlisten :9001\n[d]\nmode tcp\nlisten 127.0.0.1:9001\n"))
	if !errors.As(err, &list) || len(list) != 2 || list[0].Line != 4 || list[1].Line != 10 {
		t.Errorf("two address clashes: %v; want errors at lines 4 and 10", err)
	}
}

// TestParseConfigStopsAfterTwentyErrors: a file of garbage is not a flood.
func TestParseConfigStopsAfterTwentyErrors(t *testing.T) {
	conf := "[web]\nmode http\nlisten 127.0.0.1:0\n" + strings.Repeat("colour blue\n", 50)
	_, err := ParseConfig("app.conf", strings.NewReader(conf))
	var list ConfigErrors
	if !errors.As(err, &list) || len(list) != maxConfigErrors {
		t.Fatalf("got %d errors (%v); want %d", len(list), err, maxConfigErrors)
	}
	if !strings.HasSuffix(err.Error(), "(stopped after 20 errors)") {
		t.Errorf("the message does not say it stopped:\n%s", err)
	}
}

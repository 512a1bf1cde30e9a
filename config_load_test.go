package gozd_test

// What LoadConfig refuses to read, and the config that would drop workers to
// a group but leave them root: through LoadConfig and through a real program
// started, signalled and reloaded with it.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gozd/gozd"
)

const smallConf = "[web]\nmode http\nlisten 127.0.0.1:0\n"

// specialConfigs makes, in dir, config paths that are not a config file: a
// FIFO nobody writes to, an endless device, one too big to be a config.
// want is a part of the error each must give.
func specialConfigs(t *testing.T, dir string) []struct{ name, path, want string } {
	t.Helper()
	fifo := filepath.Join(dir, "fifo.conf")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// Valid but for its size: comments past 1 MiB.
	big := writeFile(t, dir, "big.conf", strings.Repeat("# padding padding padding padding padding padding\n", 21000)+smallConf)
	return []struct{ name, path, want string }{
		{"fifo", fifo, "not a regular file but a named pipe (FIFO)"},
		{"dev zero", "/dev/zero", "not a regular file but a character device"},
		{"directory", dir, "not a regular file but a directory"},
		{"over 1 MiB", big, "over the limit of 1048576 bytes (1 MiB)"},
	}
}

// stopIfStarted stops, at the end of the test, the daemon a start that
// should have failed started.
func stopIfStarted(t *testing.T, r opsResult) {
	var pid int
	if _, err := fmt.Sscanf(r.stdout, "gozd: started, pid %d", &pid); err == nil {
		opsKillOnCleanup(t, pid)
	}
}

func TestLoadConfigNotAConfigFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range specialConfigs(t, dir) {
		t.Run(tc.name, func(t *testing.T) {
			errc := make(chan error, 1)
			go func() {
				_, err := gozd.LoadConfig(tc.path)
				errc <- err
			}()
			var err error
			select {
			case err = <-errc:
			case <-time.After(waitTimeout):
				t.Fatalf("LoadConfig(%s) still reading after %s", tc.path, waitTimeout)
			}
			var ce *gozd.ConfigError
			if !errors.As(err, &ce) || ce.File != tc.path || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadConfig(%s) = %v; want a *ConfigError for the file saying %q", tc.path, err, tc.want)
			}
		})
	}
	t.Run("just under 1 MiB", func(t *testing.T) {
		path := writeFile(t, dir, "padded.conf", strings.Repeat("#\n", (1<<20-len(smallConf))/2)+smallConf)
		if _, err := gozd.LoadConfig(path); err != nil {
			t.Fatal(err)
		}
	})
}

// TestConfigNotAConfigFileProgram gives the same paths to a real program: a
// start in the foreground and in the background, and -s reload, fail at
// once naming the file; a master whose config is swapped for a FIFO logs the
// failed reload and serves on.
func TestConfigNotAConfigFileProgram(t *testing.T) {
	bin := buildTestDaemon(t, "v1", "")
	for _, tc := range specialConfigs(t, opsDir(t)) {
		for _, args := range [][]string{{"-f", "-c", tc.path}, {"-c", tc.path}, {"-s", "reload", "-c", tc.path}} {
			r := opsRun(t, bin, args...)
			stopIfStarted(t, r)
			if r.code == 0 || !strings.Contains(r.stderr, tc.path) || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s: %v; want non-zero and %s: %s", strings.Join(args, " "), r, tc.path, tc.want)
			}
		}
	}

	t.Run("reload into a FIFO", func(t *testing.T) {
		d := startMaster(t, newDaemonDir(t), smallConf)
		w := d.worker()
		if err := os.Remove(d.conf); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(d.conf, 0o644); err != nil {
			t.Fatal(err)
		}
		d.proc.signal(syscall.SIGHUP)
		line := d.proc.waitOutput("reload failed: config not loaded")
		if !strings.Contains(line, d.conf) || !strings.Contains(line, "named pipe") {
			t.Errorf("log: %s; want the config's path and why", line)
		}
		if pid, err := servedBy(d.addrs["web"], "/"); err != nil || pid != w {
			t.Errorf("after the failed reload: GET / from pid %d, %v; want worker %d", pid, err, w)
		}
		d.proc.signal(syscall.SIGQUIT)
		if code := d.proc.wait(); code != 0 {
			t.Errorf("quit: exit %d", code)
		}
	})
}

// TestConfigGroupWithoutUser: group alone would start workers with that
// group but the master's uid (root's, with every capability), so it is a
// config error at the group line that says what to add.
func TestConfigGroupWithoutUser(t *testing.T) {
	dir := opsDir(t)
	conf := writeFile(t, dir, "group.conf", fmt.Sprintf("pidfile %s/gozd.pid\n# workers as group 0\ngroup 0\n%s", dir, smallConf))
	_, err := gozd.LoadConfig(conf)
	var ce *gozd.ConfigError
	if !errors.As(err, &ce) || ce.File != conf || ce.Line != 3 || !strings.Contains(err.Error(), "add a user directive") {
		t.Errorf("LoadConfig: %v; want a *ConfigError at %s:3 that says to add user", err, conf)
	}
	if _, err := gozd.LoadConfig(writeFile(t, dir, "both.conf", "user 0\ngroup 0\n"+smallConf)); err != nil {
		t.Errorf("user and group: %v", err)
	}

	r := opsRun(t, buildTestDaemon(t, "v1", ""), "-c", conf)
	stopIfStarted(t, r)
	if want := conf + ":3: group \"0\" without user"; r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("start: %v; want non-zero and %q", r, want)
	}
}

package gozd_test

// Tests of what another local user can do to a root daemon through its
// files: plant a pid and state file for -s to trust, plant symlinks for the
// master to write through, reuse a dead master's pid. The other user is
// nobody: the test binary re-run as nobody plants the files.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envPlant carries a plantSpec to TestSecurityPlanter.
const envPlant = "GOZD_TEST_PLANT"

// plantSpec is what the other user's process does, in this order.
type plantSpec struct {
	Files map[string]string // path → content
	Links map[string]string // symlink path → target
	Lock  string            // a file to open read-only and hold flock(LOCK_EX) on
}

// TestSecurityPlanter is no test: the security tests re-run the test binary
// as nobody with envPlant set, and here it plants what that says, reports
// each path ("planted PATH" or "failed PATH: why"), prints "ready" and holds
// its lock until the test ends it.
func TestSecurityPlanter(t *testing.T) {
	spec := os.Getenv(envPlant)
	if spec == "" {
		return
	}
	var p plantSpec
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		fmt.Printf("failed spec: %v\n", err)
		os.Exit(1)
	}
	report := func(path string, err error) {
		if err != nil {
			fmt.Printf("failed %s: %v\n", path, err)
		} else {
			fmt.Printf("planted %s\n", path)
		}
	}
	for path, content := range p.Files {
		report(path, os.WriteFile(path, []byte(content), 0o644))
	}
	for link, target := range p.Links {
		report(link, os.Symlink(target, link))
	}
	if p.Lock != "" {
		f, err := os.Open(p.Lock)
		if err == nil {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		}
		report(p.Lock, err)
	}
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
	}
}

// nobodyCred returns the credential of user nobody, skipping the test unless
// it runs as root and nobody exists.
func nobodyCred(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: another user's files are what is tested")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody on this system")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
}

// plantAsNobody runs the planter as nobody and waits until it is done; the
// test's cleanup ends it by pid. It returns the planter's report.
func plantAsNobody(t *testing.T, spec plantSpec) string {
	t.Helper()
	cred := nobodyCred(t)
	// The test binary's own directory is private to root: nobody runs a
	// copy in a directory it may enter.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := opsDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := opsPrivateBinary(t, self, dir)
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestSecurityPlanter$")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), envPlant+"="+string(b))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	p := opsStartCmd(t, cmd)
	p.waitOutput("ready")
	return p.out.String()
}

// startVictim starts a root process that must survive the test: `sleep`,
// which SIGUSR1, SIGINT, SIGQUIT and SIGHUP would all end.
func startVictim(t *testing.T) int {
	t.Helper()
	p := startProcess(t, "sleep", "1000")
	return p.pid()
}

// planted is a state file describing pid as the master of config, as an
// attacker can forge it: a process's executable and start time are public.
func planted(t *testing.T, pid int, config string) string {
	t.Helper()
	var exe syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/exe", pid), &exe); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{
		"pid": pid, "config": config, "worker": 0, "gen": 1, "hups": 0,
		"master": map[string]any{"exe_dev": exe.Dev, "exe_ino": exe.Ino, "start": opsStartTime(t, pid)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// opsStartTime returns field 22 of /proc/pid/stat.
func opsStartTime(t *testing.T, pid int) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(opsStat(t, pid)[22-3], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// oldDefaultPath is where gozd used to put a config's default files:
// $TMPDIR/gozd-<name>-<hash of its path><ext>, computable by anyone.
func oldDefaultPath(conf, ext string) string {
	sum := sha256.Sum256([]byte(conf))
	name := strings.TrimSuffix(filepath.Base(conf), filepath.Ext(conf))
	return filepath.Join(os.TempDir(), "gozd-"+name+"-"+hex.EncodeToString(sum[:4])+ext)
}

// daemonDirName is the last element of conf's default runtime directory:
// <config name>-<hash of its path>.
func daemonDirName(conf string) string {
	sum := sha256.Sum256([]byte(conf))
	return strings.TrimSuffix(filepath.Base(conf), filepath.Ext(conf)) + "-" + hex.EncodeToString(sum[:4])
}

// rootRunDir is root's default runtime directory for conf; the test's
// cleanup removes it.
func rootRunDir(t *testing.T, conf string) string {
	dir := "/run/gozd/" + daemonDirName(conf)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// worldDir returns a directory anyone may write to, without the sticky bit,
// so that the kernel's protected_symlinks does not guard it either.
func worldDir(t *testing.T) string {
	t.Helper()
	dir := opsDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// assertNotSignalled runs -s reopen and -s stop against conf and checks
// that both fail, saying want, and that victim lives.
func assertNotSignalled(t *testing.T, bin, conf string, victim int, want ...string) {
	t.Helper()
	for _, cmd := range []string{"reopen", "stop"} {
		r := opsRun(t, bin, "-s", cmd, "-c", conf)
		if r.code == 0 {
			t.Errorf("-s %s: %v; want refused", cmd, r)
		}
		for _, w := range want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("-s %s: %v; want %q in the message", cmd, r, w)
			}
		}
		if signalled(victim) {
			t.Fatalf("-s %s signalled pid %d, a root process named by another user's files", cmd, victim)
		}
	}
}

// signalled reports whether pid is gone or has a signal pending: a signal
// sent is pending from kill(2) until the process takes it, and sleep dies
// of it.
func signalled(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil || !processAlive(pid) {
		return true
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && (f[0] == "SigPnd:" || f[0] == "ShdPnd:") && strings.Trim(f[1], "0") != "" {
			return true
		}
	}
	return false
}

// TestSecurityPlantedPidFile: nobody writes a pid file naming a root
// process, a state file matching it (executable and start time included)
// and holds the pid file's lock, where a root daemon's files would be. Root's
// -s signals nothing, and says why.
func TestSecurityPlantedPidFile(t *testing.T) {
	nobodyCred(t)
	bin := buildBinary(t, "./examples/http", "v1")

	t.Run("configured pidfile in a world-writable directory", func(t *testing.T) {
		world, priv := worldDir(t), opsDir(t)
		pidPath := world + "/app.pid"
		conf := writeFile(t, priv, "app.conf", fmt.Sprintf("pidfile %s\nlogfile %s/app.log\n[web]\nmode http\nlisten 127.0.0.1:0\n", pidPath, priv))
		victim := startVictim(t)
		report := plantAsNobody(t, plantSpec{
			Files: map[string]string{pidPath: fmt.Sprintf("%d\n", victim), pidPath + ".state": planted(t, victim, conf)},
			Lock:  pidPath,
		})
		if strings.Contains(report, "failed") {
			t.Fatalf("planting failed, the test proves nothing:\n%s", report)
		}
		assertNotSignalled(t, bin, conf, victim, pidPath, "owned by uid 65534", "not signalled")

		// A start does not take over, or trust, another user's pid
		// file: it is refused, naming the file and its owner.
		r := opsRun(t, bin, "-c", conf)
		if r.code == 0 || !strings.Contains(r.stderr, pidPath) || !strings.Contains(r.stderr, "owned by uid 65534") {
			t.Errorf("start with nobody's pid file in place: %v; want refused, naming %s and uid 65534", r, pidPath)
		}
		if !processAlive(victim) {
			t.Errorf("victim pid %d died", victim)
		}
	})

	t.Run("default location", func(t *testing.T) {
		world, priv := worldDir(t), opsDir(t)
		// Where gozd used to look: $TMPDIR, here a world-writable
		// directory without the sticky bit.
		t.Setenv("TMPDIR", world)
		conf := writeFile(t, priv, "app.conf", "[web]\nmode http\nlisten 127.0.0.1:0\n")
		runDir := rootRunDir(t, conf)
		victim := startVictim(t)
		state := planted(t, victim, conf)
		oldPid := oldDefaultPath(conf, ".pid")
		report := plantAsNobody(t, plantSpec{
			Files: map[string]string{
				oldPid: fmt.Sprintf("%d\n", victim), oldPid + ".state": state,
				// Where gozd looks now: nobody cannot write there.
				runDir + "/app.pid": fmt.Sprintf("%d\n", victim), runDir + "/app.pid.state": state,
			},
			Lock: oldPid,
		})
		if !strings.Contains(report, "planted "+oldPid+"\n") || !strings.Contains(report, "planted "+oldPid+".state\n") {
			t.Fatalf("planting at the old default path failed, the test proves nothing:\n%s", report)
		}
		if !strings.Contains(report, "failed "+runDir+"/app.pid:") || opsExists(runDir+"/app.pid") {
			t.Fatalf("nobody could write into root's runtime directory %s:\n%s", runDir, report)
		}
		assertNotSignalled(t, bin, conf, victim, "no daemon is running", "no pid file "+runDir+"/app.pid")

		// The planted files do not block a start either.
		d := opsStart(t, bin, conf)
		if got := strings.TrimSpace(opsReadFile(t, runDir+"/app.pid")); got != strconv.Itoa(d.pid) {
			t.Errorf("pid file %s holds %q, want %d", runDir+"/app.pid", got, d.pid)
		}
		if r := d.ctl("quit"); r.code != 0 {
			t.Errorf("-s quit: %v", r)
		}
		if !processAlive(victim) {
			t.Errorf("victim pid %d died", victim)
		}
	})
}

// TestSecurityStaleState: a master killed with -9 leaves its pid and state
// files; when its pid is reused, and someone (here nobody, through a
// readable pid file) holds the lock, -s must still see that the pid is not
// the master any more.
func TestSecurityStaleState(t *testing.T) {
	nobodyCred(t)
	bin := buildBinary(t, "./examples/http", "v1")
	dir := opsDir(t)
	if err := os.Chmod(dir, 0o755); err != nil { // nobody may open the pid file, not write
		t.Fatal(err)
	}
	pidPath := dir + "/app.pid"
	conf := writeFile(t, dir, "app.conf", fmt.Sprintf("pidfile %s\nlogfile %s/app.log\n[web]\nmode http\nlisten 127.0.0.1:0\n", pidPath, dir))
	d := opsStart(t, bin, conf)
	w := d.worker()
	syscall.Kill(d.pid, syscall.SIGKILL)
	syscall.Kill(w, syscall.SIGKILL)
	waitUntil(t, "the killed daemon gone", func() bool { return !processAlive(d.pid) && !processAlive(w) })
	var dead map[string]any
	if err := json.Unmarshal([]byte(opsReadFile(t, pidPath+".state")), &dead); err != nil {
		t.Fatal(err)
	}

	victim := startVictim(t)
	var victimState map[string]any
	if err := json.Unmarshal([]byte(planted(t, victim, conf)), &victimState); err != nil {
		t.Fatal(err)
	}
	deadMaster, _ := dead["master"].(map[string]any)
	victimMaster := victimState["master"].(map[string]any)
	for _, tc := range []struct {
		name   string
		master map[string]any
		want   string
	}{
		// The pid was reused: the dead master's record, another process.
		{"pid reused", deadMaster, "not the master"},
		// Same start time, but the binary is not the master's.
		{"another executable", map[string]any{"exe_dev": deadMaster["exe_dev"], "exe_ino": deadMaster["exe_ino"], "start": victimMaster["start"]}, "another executable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Root's own files, as the killed master left them, but
			// naming the pid that is now the victim's.
			dead["pid"], dead["master"] = victim, tc.master
			b, _ := json.Marshal(dead)
			writeFile(t, dir, "app.pid", fmt.Sprintf("%d\n", victim))
			writeFile(t, dir, "app.pid.state", string(b))
			if report := plantAsNobody(t, plantSpec{Lock: pidPath}); strings.Contains(report, "failed") {
				t.Fatalf("nobody could not lock %s:\n%s", pidPath, report)
			}
			assertNotSignalled(t, bin, conf, victim, tc.want, "not signalled")
		})
	}
	if !processAlive(victim) {
		t.Errorf("victim pid %d died", victim)
	}
}

// TestSecuritySymlinks: symlinks nobody plants where a root daemon writes
// its files, in a world-writable directory without the sticky bit, lead to
// root files that must stay as they are. The start is refused, naming the
// link, or goes on without following it.
func TestSecuritySymlinks(t *testing.T) {
	nobodyCred(t)
	bin := buildBinary(t, "./examples/http", "v1")
	const precious = "root's file\n"

	for _, tc := range []struct {
		name    string
		pidfile bool     // a pidfile directive into the world-writable directory
		links   []string // planted names, relative to the world-writable directory; $OLD: the old default prefix
		refused string   // the start is refused, naming this link; "" = it serves
	}{
		{name: "default paths", links: []string{"$OLD.pid", "$OLD.pid.state", "$OLD.pid.state.tmp", "$OLD.log"}},
		{name: "pidfile", pidfile: true, links: []string{"app.pid"}, refused: "app.pid"},
		{name: "state file", pidfile: true, links: []string{"app.pid.state"}, refused: "app.pid.state"},
		{name: "temporary state file", pidfile: true, links: []string{"app.pid.state.tmp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world, priv := worldDir(t), opsDir(t)
			t.Setenv("TMPDIR", world)
			text := "[web]\nmode http\nlisten 127.0.0.1:0\n"
			if tc.pidfile {
				text = fmt.Sprintf("pidfile %s/app.pid\nlogfile %s/app.log\n", world, priv) + text
			}
			conf := writeFile(t, priv, "app.conf", text)
			rootRunDir(t, conf)
			old := filepath.Base(oldDefaultPath(conf, ""))
			links := map[string]string{}
			for i, l := range tc.links {
				target := writeFile(t, priv, fmt.Sprintf("target%d", i), precious)
				if err := os.Chmod(target, 0o600); err != nil {
					t.Fatal(err)
				}
				links[filepath.Join(world, strings.Replace(l, "$OLD", old, 1))] = target
			}
			if report := plantAsNobody(t, plantSpec{Links: links}); strings.Contains(report, "failed") {
				t.Fatalf("planting failed:\n%s", report)
			}

			r := opsRun(t, bin, "-c", conf)
			if tc.refused != "" {
				link := filepath.Join(world, tc.refused)
				if r.code == 0 || !strings.Contains(r.stderr, link+" is a symbolic link owned by uid 65534") {
					t.Errorf("start: %v; want refused, naming the link %s and its owner", r, link)
				}
			} else {
				if r.code != 0 {
					t.Fatalf("start: %v", r)
				}
				d := &opsDaemon{t: t, bin: bin, conf: conf}
				fmt.Sscanf(r.stdout, "gozd: started, pid %d", &d.pid)
				opsKillOnCleanup(t, d.pid)
				d.worker()
				// A reload rewrites the state file; a reopen reopens the log.
				for _, cmd := range []string{"reload", "reopen", "quit"} {
					if r := d.ctl(cmd); r.code != 0 {
						t.Errorf("-s %s: %v", cmd, r)
					}
				}
			}
			for link, target := range links {
				if got := opsReadFile(t, target); got != precious {
					t.Errorf("%s, linked from %s, was written to: %q", target, link, got)
				}
				if fi, err := os.Lstat(link); tc.refused != "" && (err != nil || fi.Mode()&os.ModeSymlink == 0) {
					t.Errorf("%s: the refused start removed or replaced the link (%v)", link, err)
				}
			}
		})
	}
}

// TestSecurityUserDefaults: a daemon of a user other than root keeps its
// default files in $XDG_RUNTIME_DIR/gozd/<name>-<hash>/ when that is the
// user's private directory, else in /tmp/gozd-<uid>/<name>-<hash>/, each
// directory 0700 and the user's; a directory there that is not the user's
// is refused, naming its owner.
func TestSecurityUserDefaults(t *testing.T) {
	cred := nobodyCred(t)
	dir := opsDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := opsPrivateBinary(t, buildBinary(t, "./examples/http", "v1"), dir)
	conf := writeFile(t, dir, "app.conf", "[web]\nmode http\nlisten 127.0.0.1:0\n")
	// xdgDir returns a fresh runtime directory of nobody's.
	xdgDir := func(t *testing.T) string {
		xdg := opsDir(t)
		if err := os.Chown(xdg, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
		return xdg
	}
	asNobody := func(xdg string) func(*exec.Cmd) {
		return func(cmd *exec.Cmd) {
			cmd.Dir = "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			if xdg != "" {
				cmd.Env = append(cmd.Env, "XDG_RUNTIME_DIR="+xdg)
			}
		}
	}
	// serves starts the daemon as nobody, checks its files are in runDir
	// and that every directory from top down is private to nobody, and
	// stops it.
	serves := func(t *testing.T, xdg, top, runDir string) {
		r := opsRunWith(t, asNobody(xdg), bin, "-c", conf)
		if r.code != 0 {
			t.Fatalf("start as nobody: %v", r)
		}
		var pid int
		fmt.Sscanf(r.stdout, "gozd: started, pid %d", &pid)
		opsKillOnCleanup(t, pid)
		if got := strings.TrimSpace(opsReadFile(t, runDir+"/app.pid")); got != strconv.Itoa(pid) {
			t.Errorf("pid file %s holds %q, want %d", runDir+"/app.pid", got, pid)
		}
		if !strings.Contains(r.stdout, "log "+runDir+"/app.log") {
			t.Errorf("start: %v; want the log in %s", r, runDir)
		}
		for _, p := range []string{top, runDir} {
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || fi.Mode().Perm() != 0o700 || st.Uid != cred.Uid {
				t.Errorf("%s: mode %v, owner uid %d; want a directory 0700 of uid %d", p, fi.Mode(), st.Uid, cred.Uid)
			}
		}
		if r := opsRunWith(t, asNobody(xdg), bin, "-s", "quit", "-c", conf); r.code != 0 {
			t.Errorf("-s quit as nobody: %v", r)
		}
	}

	t.Run("XDG_RUNTIME_DIR", func(t *testing.T) {
		xdg := xdgDir(t)
		serves(t, xdg, xdg+"/gozd", xdg+"/gozd/"+daemonDirName(conf))
	})

	t.Run("no XDG_RUNTIME_DIR", func(t *testing.T) {
		top := fmt.Sprintf("/tmp/gozd-%d", cred.Uid)
		runDir := top + "/" + daemonDirName(conf)
		_, err := os.Lstat(top)
		made := errors.Is(err, os.ErrNotExist)
		t.Cleanup(func() {
			os.RemoveAll(runDir)
			if made { // the daemon made it: leave /tmp as it was
				os.Remove(top)
			}
		})
		serves(t, "", top, runDir)
	})

	t.Run("another user's directory", func(t *testing.T) {
		xdg := xdgDir(t)
		// Root (another user, to nobody) made $XDG_RUNTIME_DIR/gozd.
		if err := os.Mkdir(xdg+"/gozd", 0o755); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("runtime directory %s/gozd is owned by uid 0", xdg)
		for _, args := range [][]string{{"-c", conf}, {"-f", "-c", conf}, {"-s", "quit", "-c", conf}} {
			r := opsRunWith(t, asNobody(xdg), bin, args...)
			if r.code == 0 || !strings.Contains(r.stderr, want) {
				t.Errorf("%s as nobody: %v; want refused, %q", strings.Join(args, " "), r, want)
			}
		}
	})
}

package gozd_test

// Zero-downtime reload, proved end to end: a real master running
// internal/testdaemon, its binary replaced on disk between reloads, while
// standard clients hammer every kind of listener.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const testDaemonPkg = "./internal/testdaemon"

// buildTestDaemon builds internal/testdaemon with main.version set to
// version and main.behavior to behavior ("", "crash", "hang" or "slow"), once per
// test run, into buildBinary's directory.
func buildTestDaemon(t testing.TB, version, behavior string) string {
	t.Helper()
	normal := buildBinary(t, testDaemonPkg, version) // also makes builds.dir
	if behavior == "" {
		return normal
	}
	builds.mu.Lock()
	defer builds.mu.Unlock()
	key := testDaemonPkg + "@" + version + "+" + behavior
	if p, ok := builds.done[key]; ok {
		return p
	}
	out := filepath.Join(builds.dir, "testdaemon-"+version+"-"+behavior)
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", "-X main.version="+version+" -X main.behavior="+behavior, testDaemonPkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s (%s): %v\n%s", testDaemonPkg, behavior, err, b)
	}
	builds.done[key] = out
	return out
}

// masterProcess is a master running internal/testdaemon in the foreground,
// with its binary, config and pid file in a short temporary directory (unix
// socket paths must stay short).
type masterProcess struct {
	t     *testing.T
	dir   string
	bin   string // the installed binary the master starts workers from
	conf  string
	proc  *process
	pid   int               // the master
	addrs map[string]string // group → address, from the start line
}

// newDaemonDir returns a fresh short directory, removed after the test.
func newDaemonDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gozd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startMaster installs the v1 build in dir, writes conf (in which %DIR%
// stands for dir, and a pidfile directive is added) and starts the master
// with -f, returning once it serves.
func startMaster(t *testing.T, dir, conf string) *masterProcess {
	t.Helper()
	d := &masterProcess{t: t, dir: dir, bin: filepath.Join(dir, "testdaemon")}
	installBinary(t, buildTestDaemon(t, "v1", ""), d.bin)
	d.conf = d.writeConfig(conf)
	d.proc = startProcess(t, d.bin, "-f", "-c", d.conf)
	d.pid, d.addrs = startedAddrs(t, d.proc.waitOutput("gozd: started"))
	if d.pid != d.proc.pid() {
		t.Fatalf("start line names pid %d, the master is %d", d.pid, d.proc.pid())
	}
	return d
}

// writeConfig (re)writes the daemon's config file.
func (d *masterProcess) writeConfig(conf string) string {
	d.t.Helper()
	conf = "pidfile " + filepath.Join(d.dir, "gozd.pid") + "\n" + strings.ReplaceAll(conf, "%DIR%", d.dir)
	return writeFile(d.t, d.dir, "gozd.conf", conf)
}

// control runs the installed binary with -s cmd, as an operator would, and
// returns its output and exit code.
func (d *masterProcess) control(cmd string) (string, int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, d.bin, "-s", cmd, "-c", d.conf).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit) && ctx.Err() == nil:
		return string(out), exit.ExitCode()
	}
	d.t.Fatalf("-s %s: %v\n%s", cmd, err, out)
	return "", -1
}

// reload installs the build src and reloads, by SIGHUP or by -s reload.
// With -s reload it asserts the command's success and returns the new
// worker's pid from its output; otherwise it returns 0.
func (d *masterProcess) reload(src string, bySignal bool, old int) int {
	d.t.Helper()
	installBinary(d.t, src, d.bin)
	if bySignal {
		d.proc.signal(syscall.SIGHUP)
		return 0
	}
	out, code := d.control("reload")
	var master, nw, ow int
	if _, err := fmt.Sscanf(strings.TrimSpace(out), "gozd: reloaded pid %d: worker %d replaced worker %d", &master, &nw, &ow); code != 0 || err != nil {
		d.t.Fatalf("-s reload: exit %d, output %q", code, out)
	}
	if master != d.pid || ow != old || nw == old {
		d.t.Fatalf("-s reload: %q: want master %d, old worker %d replaced", out, d.pid, old)
	}
	return nw
}

// worker waits until the master has exactly one child and returns it.
func (d *masterProcess) worker() int {
	d.t.Helper()
	var pids []int
	waitUntil(d.t, "exactly one worker", func() bool {
		pids = childPids(d.pid)
		return len(pids) == 1
	})
	return pids[0]
}

// pidFilePid reads the pid file.
func (d *masterProcess) pidFilePid() int {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, "gozd.pid"))
	if err != nil {
		d.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		d.t.Fatalf("pid file: %v", err)
	}
	return pid
}

// logCount counts the master's log lines holding s.
func (d *masterProcess) logCount(s string) int {
	return strings.Count(d.proc.out.String(), s)
}

// waitLog waits until the log holds s at least n times.
func (d *masterProcess) waitLog(s string, n int) {
	d.t.Helper()
	waitUntil(d.t, fmt.Sprintf("%d× %q in the master's log", n, s), func() bool { return d.logCount(s) >= n })
}

// oldWorkerExit returns the master's "old worker exited" line for pid.
func (d *masterProcess) oldWorkerExit(pid int) string {
	d.t.Helper()
	var line string
	waitUntil(d.t, fmt.Sprintf("the log line of old worker %d exiting", pid), func() bool {
		var ok bool
		line, ok = d.proc.out.line(fmt.Sprintf(`msg="old worker exited" pid=%d role=master worker=%d `, d.pid, pid))
		return ok
	})
	return line
}

// fdCount is the number of open descriptors of pid.
func fdCount(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// sockets returns the sockets pid holds, by what /proc/PID/fd links to
// ("socket:[inode]"). A new connection shows as a socket not there before,
// whatever else the process opens or closes meanwhile.
func sockets(pid int) map[string]bool {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	socks := make(map[string]bool)
	for _, e := range ents {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err == nil && strings.HasPrefix(link, "socket:") {
			socks[link] = true
		}
	}
	return socks
}

// Clients. Each returns the version that answered, or an error for anything
// a client would count as a failure.

var (
	keepAliveClient = &http.Client{Timeout: waitTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	newConnClient   = &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
)

// httpVersion GETs url and returns the version and pid that answered.
func httpVersion(c *http.Client, url string) (version string, pid int, err error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return "", 0, err
	}
	return httpVersionReq(c, req)
}

// httpVersionReq sends req and returns the version and pid that answered.
func httpVersionReq(c *http.Client, req *http.Request) (version string, pid int, err error) {
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, fmt.Errorf("%s %s: reading the body: %w", req.Method, req.URL, err)
	}
	return checkVersionResponse(resp.StatusCode, resp.Header, string(body))
}

// checkVersionResponse checks an answer of testdaemon's version handler.
func checkVersionResponse(status int, h http.Header, body string) (string, int, error) {
	v := h.Get("X-Version")
	pid, _ := strconv.Atoi(h.Get("X-Pid"))
	if status != http.StatusOK || body != fmt.Sprintf("%s %d\n", v, pid) || pid == 0 {
		return "", 0, fmt.Errorf("bad answer: status %d, X-Version %q, X-Pid %q, body %q", status, v, h.Get("X-Pid"), body)
	}
	return v, pid, nil
}

// echoOnce connects to addr, has one line echoed and closes.
func echoOnce(addr string, n int) error {
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	return echoLine(c, bufio.NewReader(c), fmt.Sprintf("ping %d", n))
}

// echoLine sends line on c and checks that it comes back.
func echoLine(c net.Conn, r *bufio.Reader, line string) error {
	c.SetDeadline(time.Now().Add(waitTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("echo of %q: %w", line, err)
	}
	if got != line+"\n" {
		return fmt.Errorf("echo of %q: got %q", line, got)
	}
	return nil
}

// FastCGI record types and the responder role (FastCGI spec 1.0).
const (
	fcgiBeginRequest = 1
	fcgiEndRequest   = 3
	fcgiParams       = 4
	fcgiStdin        = 5
	fcgiStdout       = 6
	fcgiStderr       = 7
	fcgiResponder    = 1
)

// fcgiGet sends one GET of uri as a web server would, over a new connection
// to the unix socket sock, and returns the version that answered. The
// standard library has a FastCGI server only, so this is a minimal client.
func fcgiGet(sock, uri string) (string, int, error) {
	c, err := net.DialTimeout("unix", sock, waitTimeout)
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	const id = 1
	var req []byte
	record := func(typ byte, content []byte) {
		req = append(req, 1, typ, 0, id, byte(len(content)>>8), byte(len(content)), 0, 0)
		req = append(req, content...)
	}
	record(fcgiBeginRequest, []byte{0, fcgiResponder, 0, 0, 0, 0, 0, 0}) // flags 0: close after the answer
	var params []byte
	for _, kv := range [][2]string{
		{"REQUEST_METHOD", "GET"},
		{"SERVER_PROTOCOL", "HTTP/1.1"},
		{"REQUEST_URI", uri},
		{"HTTP_HOST", "localhost"},
		{"REMOTE_ADDR", "127.0.0.1"},
		{"REMOTE_PORT", "1"},
	} {
		params = append(params, byte(len(kv[0])), byte(len(kv[1]))) // all shorter than 128
		params = append(params, kv[0]+kv[1]...)
	}
	record(fcgiParams, params)
	record(fcgiParams, nil)
	record(fcgiStdin, nil)
	if _, err := c.Write(req); err != nil {
		return "", 0, err
	}

	var stdout, stderr []byte
	r := bufio.NewReader(c)
	for {
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return "", 0, fmt.Errorf("fcgi: reading a record header: %w", err)
		}
		content := make([]byte, int(binary.BigEndian.Uint16(h[4:6]))+int(h[6]))
		if _, err := io.ReadFull(r, content); err != nil {
			return "", 0, fmt.Errorf("fcgi: reading a record: %w", err)
		}
		content = content[:binary.BigEndian.Uint16(h[4:6])]
		switch h[1] {
		case fcgiStdout:
			stdout = append(stdout, content...)
		case fcgiStderr:
			stderr = append(stderr, content...)
		case fcgiEndRequest:
			if len(content) < 5 || content[4] != 0 {
				return "", 0, fmt.Errorf("fcgi: bad END_REQUEST %x", content)
			}
			if len(stderr) > 0 {
				return "", 0, fmt.Errorf("fcgi: stderr %q", stderr)
			}
			return parseCGIResponse(stdout)
		}
	}
}

// parseCGIResponse reads a CGI response: "Status:" and other headers, a blank
// line, the body.
func parseCGIResponse(b []byte) (string, int, error) {
	tr := textproto.NewReader(bufio.NewReader(strings.NewReader(string(b))))
	mh, err := tr.ReadMIMEHeader()
	if err != nil {
		return "", 0, fmt.Errorf("fcgi: response header in %q: %w", b, err)
	}
	body, _ := io.ReadAll(tr.R)
	status, _ := strconv.Atoi(strings.Fields(mh.Get("Status") + " 0")[0])
	return checkVersionResponse(status, http.Header(mh), string(body))
}

// loadGen runs one kind of client in a loop and tallies the outcomes.
type loadGen struct {
	name string
	do   func(n int) (version string, err error)

	ok, failed atomic.Int64
	last       atomic.Value // the version that answered last
	mu         sync.Mutex
	errs       []error // the first few failures
}

// run calls g.do until stop is closed or max calls were made, pausing
// between calls so that several generators and the daemons share the
// machine.
func (g *loadGen) run(stop <-chan struct{}, max int, pause time.Duration) {
	for n := 0; n < max; n++ {
		select {
		case <-stop:
			return
		default:
		}
		v, err := g.do(n)
		if err != nil {
			g.failed.Add(1)
			g.mu.Lock()
			if len(g.errs) < 5 {
				g.errs = append(g.errs, fmt.Errorf("%s %s: %w", time.Now().Format("15:04:05.000"), g.name, err))
			}
			g.mu.Unlock()
		} else {
			g.ok.Add(1)
			if v != "" {
				g.last.Store(v)
			}
		}
		time.Sleep(pause)
	}
}

// lastVersion is the version that answered last.
func (g *loadGen) lastVersion() string {
	v, _ := g.last.Load().(string)
	return v
}

// loadGens runs generators until stopped.
type loadGens struct {
	gens []*loadGen
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// startLoad starts gens; the test's cleanup stops them.
func startLoad(t *testing.T, pause time.Duration, gens ...*loadGen) *loadGens {
	l := &loadGens{gens: gens, stop: make(chan struct{})}
	for _, g := range gens {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			g.run(l.stop, 100000, pause)
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *loadGens) halt() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// check stops the generators and fails the test for any failed call or a
// generator that never succeeded.
func (l *loadGens) check(t *testing.T) {
	t.Helper()
	l.halt()
	for _, g := range l.gens {
		t.Logf("%-22s %6d ok, %d failed", g.name, g.ok.Load(), g.failed.Load())
		if g.failed.Load() > 0 || g.ok.Load() == 0 {
			t.Errorf("%s: %d ok, %d failed; first failures: %v", g.name, g.ok.Load(), g.failed.Load(), g.errs)
		}
	}
}

func httpGen(name string, c *http.Client, url string) *loadGen {
	return &loadGen{name: name, do: func(int) (string, error) {
		v, _, err := httpVersion(c, url)
		return v, err
	}}
}

func echoGen(addr string) *loadGen {
	return &loadGen{name: "tcp connect/echo/close", do: func(n int) (string, error) {
		return "", echoOnce(addr, n)
	}}
}

func fcgiGen(sock string) *loadGen {
	return &loadGen{name: "fcgi (unix socket)", do: func(int) (string, error) {
		v, _, err := fcgiGet(sock, "/")
		return v, err
	}}
}

// waitVersion waits until a new connection to url is answered by version
// and returns the pid that answered.
func waitVersion(t *testing.T, url, version string) int {
	t.Helper()
	var pid int
	waitUntil(t, fmt.Sprintf("%s to answer %s", url, version), func() bool {
		v, p, err := httpVersion(newConnClient, url)
		pid = p
		return err == nil && v == version
	})
	return pid
}

// TestReloadUnderLoad replaces the binary and reloads six times, by SIGHUP
// and by -s reload in turn, while keep-alive HTTP (quick and slow requests),
// HTTP with a connection per request, tcp connect/echo/close and FastCGI
// clients run: none of their calls may fail, every reload switches the
// version they see, the master keeps its pid, and old workers and their
// descriptors go.
func TestReloadUnderLoad(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, `
drain_timeout 10s
ready_timeout 20s
[web]
mode   http
listen 127.0.0.1:0
[echo]
mode   tcp
listen 127.0.0.1:0
[fcgi]
mode   fcgi
listen %DIR%/f.sock
`)
	url := "http://" + d.addrs["web"] + "/"
	sock := filepath.Join(dir, "f.sock")
	worker := d.worker()
	if pid := waitVersion(t, url, "v1"); pid != worker {
		t.Fatalf("answered by pid %d, the worker is %d", pid, worker)
	}
	fds := fdCount(d.pid)
	versions := []string{"v1", "v2"}
	bins := map[string]string{"v1": buildTestDaemon(t, "v1", ""), "v2": buildTestDaemon(t, "v2", "")}

	load := startLoad(t, time.Millisecond,
		httpGen("http keep-alive", keepAliveClient, url),
		httpGen("http conn per request", newConnClient, url),
		echoGen(d.addrs["echo"]),
		fcgiGen(sock),
		// Requests in flight when the old worker is told to drain.
		httpGen("http slow request", keepAliveClient, url+"sleep?d=20ms"),
	)
	defer keepAliveClient.CloseIdleConnections()

	const reloads = 6
	for i := 1; i <= reloads; i++ {
		want := versions[i%2]
		bySignal := i%2 == 1
		old := worker
		// Each reload starts while every generator is busy.
		for _, g := range load.gens {
			n := g.ok.Load() + g.failed.Load() + 10
			waitUntil(t, g.name+" to get going", func() bool { return g.ok.Load()+g.failed.Load() >= n })
		}
		reported := d.reload(bins[want], bySignal, old)
		newPid := waitVersion(t, url, want)
		for _, g := range load.gens {
			if g.lastVersion() != "" { // not tcp echo
				waitUntil(t, g.name+" to see "+want, func() bool { return g.lastVersion() == want })
			}
		}
		waitUntil(t, fmt.Sprintf("old worker %d to exit", old), func() bool { return !processAlive(old) })
		worker = d.worker()
		if worker == old || worker != newPid || (reported != 0 && reported != worker) {
			t.Fatalf("reload %d: worker %d (was %d), %s answered by %d, -s reload named %d", i, worker, old, url, newPid, reported)
		}
		if line := d.oldWorkerExit(old); !strings.Contains(line, `status="exit status 0"`) {
			t.Errorf("reload %d: old worker did not drain and exit cleanly: %s", i, line)
		}
		if p := d.pidFilePid(); p != d.pid {
			t.Fatalf("reload %d: pid file names %d, the master is %d", i, p, d.pid)
		}
		t.Logf("reload %d (%s): %s answered by worker %d", i, map[bool]string{true: "SIGHUP", false: "-s reload"}[bySignal], want, worker)
	}
	load.check(t)
	keepAliveClient.CloseIdleConnections()

	if n := d.logCount(`msg="worker ready"`); n != reloads+1 {
		t.Errorf("%d workers became ready, want %d", n, reloads+1)
	}
	if d.logCount("killing it") > 0 {
		t.Errorf("the master had to kill a worker")
	}
	// The master's descriptors are back to one worker's worth: nothing of
	// the old workers (control sockets, output pipes) stays open.
	var now int
	waitUntil(t, "the master's descriptors to settle", func() bool { now = fdCount(d.pid); return now <= fds })
	if now != fds {
		t.Errorf("master has %d descriptors open, %d after the start", now, fds)
	}
	t.Logf("%d reloads; the master holds %d descriptors, as after the start", reloads, now)

	// A graceful stop leaves no process and no socket file behind.
	d.proc.signal(syscall.SIGQUIT)
	if code := d.proc.wait(); code != 0 {
		t.Errorf("master exited %d after SIGQUIT", code)
	}
	if processAlive(worker) {
		t.Errorf("worker %d outlived its master", worker)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after quit: %v", err)
	}
}

// TestReloadLongLivedConnection: a tcp connection opened before a reload
// stays with the old worker, which keeps echoing on it and lives while it is
// open, and exits (by itself, well before drain_timeout) once the client
// closes it.
func TestReloadLongLivedConnection(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
drain_timeout 10m
[echo]
mode   tcp
listen 127.0.0.1:0
[web]
mode   http
listen 127.0.0.1:0
`)
	url := "http://" + d.addrs["web"] + "/"
	old := d.worker()
	c, err := net.DialTimeout("tcp", d.addrs["echo"], waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if err := echoLine(c, r, "before"); err != nil {
		t.Fatal(err)
	}

	d.reload(buildTestDaemon(t, "v2", ""), false, old)
	waitVersion(t, url, "v2")
	d.waitLog(`msg="worker draining"`, 1)
	for i := range 3 {
		if err := echoLine(c, r, fmt.Sprintf("after %d", i)); err != nil {
			t.Fatalf("held connection after the reload: %v", err)
		}
	}
	if err := echoOnce(d.addrs["echo"], 1); err != nil {
		t.Fatalf("new connection after the reload: %v", err)
	}
	if !processAlive(old) || len(childPids(d.pid)) != 2 {
		t.Fatalf("old worker %d alive: %v; children %v", old, processAlive(old), childPids(d.pid))
	}

	c.Close()
	waitUntil(t, fmt.Sprintf("old worker %d to exit", old), func() bool { return !processAlive(old) })
	if line := d.oldWorkerExit(old); !strings.Contains(line, `status="exit status 0"`) {
		t.Errorf("old worker did not exit by itself: %s", line)
	}
	d.worker()
}

// TestReloadDrainTimeout: drain_timeout cuts an idle connection an old
// worker still holds, and the worker then exits by itself.
func TestReloadDrainTimeout(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
drain_timeout 1s
[echo]
mode   tcp
listen 127.0.0.1:0
`)
	old := d.worker()
	c, err := net.DialTimeout("tcp", d.addrs["echo"], waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if err := echoLine(c, r, "hello"); err != nil {
		t.Fatal(err)
	}

	d.proc.signal(syscall.SIGHUP)
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if line, err := r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("held connection not closed by drain_timeout: read %q, %v", line, err)
	}
	waitUntil(t, fmt.Sprintf("old worker %d to exit", old), func() bool { return !processAlive(old) })
	if line := d.oldWorkerExit(old); !strings.Contains(line, `status="exit status 0"`) {
		t.Errorf("old worker was killed instead of closing its connection: %s", line)
	}
	if nw := d.worker(); nw == old {
		t.Fatalf("worker %d still the same after the reload", nw)
	}
	if err := echoOnce(d.addrs["echo"], 1); err != nil {
		t.Fatalf("new worker: %v", err)
	}
}

// TestReloadFailures: a new binary that crashes, one that hangs, and a
// broken config each leave the old worker serving, with no failed request,
// and say why; after each, the good build reloads fine.
func TestReloadFailures(t *testing.T) {
	const goodConf = `
drain_timeout 10s
ready_timeout 3s
[web]
mode   http
listen 127.0.0.1:0
`
	d := startMaster(t, newDaemonDir(t), goodConf)
	url := "http://" + d.addrs["web"] + "/"
	bins := map[string]string{"v1": buildTestDaemon(t, "v1", ""), "v2": buildTestDaemon(t, "v2", "")}
	crash, hang := buildTestDaemon(t, "v2", "crash"), buildTestDaemon(t, "v3", "hang")
	load := startLoad(t, 5*time.Millisecond,
		httpGen("http keep-alive", keepAliveClient, url),
		httpGen("http conn per request", newConnClient, url),
	)
	defer keepAliveClient.CloseIdleConnections()

	version, worker := "v1", d.worker()
	// still checks that the worker of before the failed reload serves,
	// alone.
	still := func(what string) {
		t.Helper()
		if v, pid, err := httpVersion(newConnClient, url); err != nil || v != version || pid != worker {
			t.Fatalf("after %s: answered %s by pid %d (%v), want %s by %d", what, v, pid, err, version, worker)
		}
		if p := d.worker(); p != worker {
			t.Fatalf("after %s: worker %d, want %d", what, p, worker)
		}
	}
	// reloadGood reloads into the good build of the other version.
	reloadGood := func() {
		t.Helper()
		version = map[string]string{"v1": "v2", "v2": "v1"}[version]
		worker = d.reload(bins[version], false, worker)
		if pid := waitVersion(t, url, version); pid != worker {
			t.Fatalf("%s answered by %d, -s reload named %d", version, pid, worker)
		}
		waitUntil(t, "keep-alive client to see "+version, func() bool { return load.gens[0].lastVersion() == version })
	}

	// A build that crashes at once, by SIGHUP and by -s reload.
	{
		d.reload(crash, true, worker)
		d.waitLog("reload failed", 1)
		if line, _ := d.proc.out.line("reload failed"); !strings.Contains(line, "crashing on purpose") || !strings.Contains(line, "exit status 3") {
			t.Errorf("the log does not quote the crash: %s", line)
		}
		still("a crash on SIGHUP")

		out, code := d.control("reload")
		if code == 0 || !strings.Contains(out, "reload failed") || !strings.Contains(out, "exit status 3") || !strings.Contains(out, "crashing on purpose") {
			t.Errorf("-s reload of a crashing build: exit %d, %q", code, out)
		}
		still("a crash on -s reload")
		reloadGood()
	}

	// A build that never registers its handlers.
	{
		installBinary(t, hang, d.bin)
		out, code := d.control("reload")
		if code == 0 || !strings.Contains(out, "reload failed") || !strings.Contains(out, "hanging on purpose") {
			t.Errorf("-s reload of a hanging build: exit %d, %q", code, out)
		}
		d.waitLog("not ready in time; killing it", 1)
		still("a hang")
		reloadGood()
	}

	// A config that does not parse, by -s reload and by SIGHUP.
	{
		asked, started := d.logCount(`msg="reload asked"`), d.logCount(`msg="worker started"`)
		conf := d.writeConfig("[web]\nmode http\nlisten 127.0.0.1:0\nbogus 1\n")
		out, code := d.control("reload")
		if code == 0 || !strings.Contains(out, conf+":5:") {
			t.Errorf("-s reload of a broken config: exit %d, %q; want %s:5", code, out, conf)
		}
		d.proc.signal(syscall.SIGHUP)
		d.waitLog("config not loaded", 1)
		if line, _ := d.proc.out.line("config not loaded"); !strings.Contains(line, conf+":5:") {
			t.Errorf("the log does not name the config error: %s", line)
		}
		// Only the SIGHUP reached the master: -s refused to signal.
		if n := d.logCount(`msg="reload asked"`); n != asked+1 {
			t.Errorf("%d reloads asked, want 1", n-asked)
		}
		if d.logCount(`msg="worker started"`) != started {
			t.Errorf("a worker was started for a broken config")
		}
		still("a broken config")
		d.writeConfig(goodConf)
		reloadGood()
	}

	load.check(t)
}

// TestReloadConfigChange: a reload with a config that adds a group, removes
// two and moves one: the added one answers, the removed and moved-away
// addresses refuse, the moved one answers at its new address; the socket
// file of a removed fcgi group is gone, that of a kept one stays.
func TestReloadConfigChange(t *testing.T) {
	dir := newDaemonDir(t)
	d := startMaster(t, dir, `
[web]
mode   http
listen 127.0.0.1:0
[echo]
mode   tcp
listen 127.0.0.1:0
[fcgi]
mode   fcgi
listen %DIR%/f.sock
[fcgi2]
mode   fcgi
listen %DIR%/g.sock
`)
	old := d.worker()
	webAddr, web2Addr := freePort(t), freePort(t)
	d.writeConfig(fmt.Sprintf(`
[web]
mode   http
listen %s
[fcgi]
mode   fcgi
listen %%DIR%%/f.sock
[web2]
mode   http
listen %s
`, webAddr, web2Addr))
	d.reload(buildTestDaemon(t, "v2", ""), false, old)
	waitUntil(t, fmt.Sprintf("old worker %d to exit", old), func() bool { return !processAlive(old) })

	for _, addr := range []string{webAddr, web2Addr} {
		if v, _, err := httpVersion(newConnClient, "http://"+addr+"/"); err != nil || v != "v2" {
			t.Errorf("%s: %s, %v; want v2", addr, v, err)
		}
	}
	if v, _, err := fcgiGet(filepath.Join(dir, "f.sock"), "/"); err != nil || v != "v2" {
		t.Errorf("kept fcgi group: %s, %v; want v2", v, err)
	}
	for _, g := range []string{"web", "echo"} {
		c, err := net.DialTimeout("tcp", d.addrs[g], waitTimeout)
		if err == nil {
			c.Close()
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s's old address %s after the reload: %v; want connection refused", g, d.addrs[g], err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "g.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file of the removed fcgi group: %v; want it gone", err)
	}
}

// reloadState is what the master writes to <pidfile>.state about reloads.
type reloadState struct {
	Worker int `json:"worker"`
	HUPs   int `json:"hups"`
	Last   *struct {
		Began int  `json:"began"`
		OK    bool `json:"ok"`
	} `json:"last"`
}

// TestReloadHUPStorm: twenty reloads asked in quick succession (nineteen
// SIGHUPs, then -s reload) while the first is under way are coalesced into
// one more reload, end with one worker serving the last build, and -s
// reload reports that worker: the outcome of the reload it asked for, not
// of the one it found under way.
func TestReloadHUPStorm(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
[web]
mode   http
listen 127.0.0.1:0
`)
	url := "http://" + d.addrs["web"] + "/"
	first := d.worker()
	// The first reload starts a build slow to become ready, so that the
	// storm lands while it is under way; the reloads after it start v2.
	installBinary(t, buildTestDaemon(t, "v2", "slow"), d.bin)
	d.proc.signal(syscall.SIGHUP)
	d.waitLog(`msg="worker started"`, 2)
	installBinary(t, buildTestDaemon(t, "v2", ""), d.bin)
	// Signals of one kind do not queue in the kernel: each waits until the
	// master has taken the one before, or the storm would be one signal.
	for i := 2; i < 20; i++ {
		d.proc.signal(syscall.SIGHUP)
		d.waitLog(`msg="reload asked"`, i)
	}
	out, code := d.control("reload")
	var master, reported, replaced int
	if _, err := fmt.Sscanf(strings.TrimSpace(out), "gozd: reloaded pid %d: worker %d replaced worker %d", &master, &reported, &replaced); code != 0 || err != nil {
		t.Fatalf("-s reload after the storm: exit %d, %q", code, out)
	}

	worker := d.worker()
	if worker == first || processAlive(first) {
		t.Fatalf("worker %d, first worker %d alive: %v", worker, first, processAlive(first))
	}
	if v, pid, err := httpVersion(newConnClient, url); err != nil || v != "v2" || pid != worker {
		t.Fatalf("after the storm: %s from pid %d, %v; want v2 from %d", v, pid, err, worker)
	}
	if reported != worker {
		t.Errorf("-s reload reported worker %d (replacing %d), but worker %d serves after the reload it asked for", reported, replaced, worker)
	}
	// Every line counted below comes before the last worker's ready.
	d.waitLog(`msg="worker ready"`, 3)
	asked, queued := d.logCount(`msg="reload asked"`), d.logCount("reload queued")
	started := d.logCount(`msg="worker started"`) - 1 // the first start
	t.Logf("%d reloads asked, %d queued, %d workers started", asked, queued, started)
	if asked != 20 || queued == 0 {
		t.Errorf("%d reloads asked, %d queued; want 20, most of them queued", asked, queued)
	}
	// All but the first land while the slow one starts: one reload for
	// them. One more is spared for a machine too loaded to send 19
	// signals in two seconds.
	if started > 3 {
		t.Errorf("%d workers started for 20 reloads asked, want 2", started)
	}
	b, err := os.ReadFile(filepath.Join(d.dir, "gozd.pid.state"))
	if err != nil {
		t.Fatal(err)
	}
	var st reloadState
	if err := json.Unmarshal(b, &st); err != nil || st.Last == nil || !st.Last.OK || st.Worker != worker || st.HUPs != 20 || st.Last.Began != 20 {
		t.Errorf("state file %s: %v; want worker %d, 20 HUPs, the last reload covering them", b, err, worker)
	}
}

// TestReloadWorkerKilled: a worker killed outright is restarted, and the
// connections made while none runs wait in the backlog and succeed.
func TestReloadWorkerKilled(t *testing.T) {
	d := startMaster(t, newDaemonDir(t), `
[web]
mode   http
listen 127.0.0.1:0
[echo]
mode   tcp
listen 127.0.0.1:0
`)
	url := "http://" + d.addrs["web"] + "/"
	old := d.worker()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, fmt.Sprintf("worker %d to die", old), func() bool { return !processAlive(old) })
	between := !slices.ContainsFunc(childPids(d.pid), processAlive)

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	pids := make(chan int, 10)
	for i := range 10 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, pid, err := httpVersion(newConnClient, url)
			errs <- err
			pids <- pid
		}()
		go func() {
			defer wg.Done()
			errs <- echoOnce(d.addrs["echo"], i)
		}()
	}
	wg.Wait()
	close(errs)
	close(pids)
	for err := range errs {
		if err != nil {
			t.Errorf("while the worker was restarted: %v", err)
		}
	}
	nw := d.worker()
	for pid := range pids {
		if pid != nw && pid != 0 {
			t.Errorf("answered by pid %d, the new worker is %d", pid, nw)
		}
	}
	if nw == old {
		t.Errorf("worker %d after killing it", nw)
	}
	d.waitLog("worker died; restarting it", 1)
	t.Logf("clients connected while no worker ran: %v", between)
}

// socketFile is what a test checks of a socket file: it is one, its mode,
// owner and inode.
type socketFile struct {
	mode     os.FileMode
	uid, gid uint32
	ino      uint64
}

func (f socketFile) String() string {
	return fmt.Sprintf("mode %v owner %d:%d inode %d", f.mode, f.uid, f.gid, f.ino)
}

func lstatSocket(t *testing.T, path string) socketFile {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("%s is %v, not a socket", path, fi.Mode())
	}
	st := fi.Sys().(*syscall.Stat_t)
	return socketFile{mode: fi.Mode().Perm(), uid: st.Uid, gid: st.Gid, ino: st.Ino}
}

// TestReloadSocketChmodOwner: a reload that changes chmod and owner (owner
// only as root) of a kept unix socket applies them to its file, which stays
// the same socket and serves the new worker; a reload that takes them out
// returns the file to what it was created with; and a symlink planted at
// the path is left alone and logged.
func TestReloadSocketChmodOwner(t *testing.T) {
	dir := newDaemonDir(t)
	const group = "[fcgi]\nmode fcgi\nlisten %DIR%/f.sock\n"
	d := startMaster(t, dir, group)
	sock := filepath.Join(dir, "f.sock")
	created := lstatSocket(t, sock)

	want := created
	want.mode = 0o606
	conf := group + "chmod 0606\n"
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		g, err := user.LookupGroupId(u.Gid)
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		want.uid, want.gid = uint32(uid), uint32(gid)
		conf += "owner nobody:" + g.Name + "\n"
	}
	old := d.worker()
	d.writeConfig(conf)
	nw := d.reload(buildTestDaemon(t, "v2", ""), false, old)
	if got := lstatSocket(t, sock); got != want {
		t.Errorf("socket file after the reload that sets chmod and owner: %v; want %v", got, want)
	}
	if v, _, err := fcgiGet(sock, "/"); err != nil || v != "v2" {
		t.Errorf("after the reload: %s, %v; want v2", v, err)
	}

	d.writeConfig(group)
	nw = d.reload(buildTestDaemon(t, "v1", ""), false, nw)
	if got := lstatSocket(t, sock); got != created {
		t.Errorf("socket file after the reload that takes chmod and owner out: %v; want %v as created", got, created)
	}
	if v, _, err := fcgiGet(sock, "/"); err != nil || v != "v1" {
		t.Errorf("after the second reload: %s, %v; want v1", v, err)
	}

	// Someone with write access to the directory swaps the socket file
	// for a symlink to a file of root's.
	secret := writeFile(t, dir, "secret", "keep me")
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, sock); err != nil {
		t.Fatal(err)
	}
	d.writeConfig(conf)
	d.reload(buildTestDaemon(t, "v2", ""), false, nw)
	if !strings.Contains(d.proc.out.String(), "socket file not updated") || !strings.Contains(d.proc.out.String(), sock+" is no longer the socket") {
		t.Errorf("the master's log does not say that %s was left alone", sock)
	}
	fi, err := os.Lstat(secret)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o600 || st.Uid != uint32(os.Geteuid()) {
		t.Errorf("%s through the planted symlink: mode %v, uid %d; want it untouched", secret, fi.Mode(), st.Uid)
	}
}

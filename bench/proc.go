package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// logBook keeps every line a server printed, with when it arrived, and lets
// the bench wait for a line.
type logBook struct {
	mu      sync.Mutex
	lines   []string
	ended   bool
	changed chan struct{} // closed and replaced on every change
}

func newLogBook() *logBook { return &logBook{changed: make(chan struct{})} }

func (b *logBook) add(line string) {
	b.mu.Lock()
	b.lines = append(b.lines, line)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *logBook) end() {
	b.mu.Lock()
	b.ended = true
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// mark is the index the next line will have.
func (b *logBook) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.lines)
}

// waitFor returns the first line from index from on that match accepts, and
// the index after it.
func (b *logBook) waitFor(from int, match func(string) bool, timeout time.Duration) (string, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		for ; from < len(b.lines); from++ {
			if match(b.lines[from]) {
				line := b.lines[from]
				b.mu.Unlock()
				return line, from + 1, nil
			}
		}
		ended, changed := b.ended, b.changed
		b.mu.Unlock()
		if ended {
			return "", from, errors.New("the server's output ended")
		}
		select {
		case <-changed:
		case <-deadline.C:
			return "", from, fmt.Errorf("no such line within %v", timeout)
		}
	}
}

// tail is the last n lines, for error messages.
func (b *logBook) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines[max(0, len(b.lines)-n):], "\n")
}

// all returns a copy of every line so far.
func (b *logBook) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...)
}

// runEnv is what every measurement needs to start servers.
type runEnv struct {
	s    *settings
	tmp  string
	bins binaries
	seq  int
	// under runs the servers started meanwhile under this command (a
	// tool and its arguments, the server's command line after them),
	// with underEnv added to their environment.
	under, underEnv []string
}

// server is one running server under test. For gozd, pid is the master's
// and serving the current worker's; for tableflip, serving is the process
// that upgraded last; for plain both are the one process.
type server struct {
	name      string
	dir       string
	bin       string   // the installed binary, replaced by install
	under     []string // the command the binary runs under (runEnv.under), if any
	cmd       *exec.Cmd
	log       *logBook
	exited    chan struct{}
	httpAddr  string
	tcpAddr   string
	pidFile   string
	addrs     map[string]string // gozd: every group's address, by name
	serving   int
	seen      []int  // every serving pid, to stop them all
	lastReady string // gozd: the master's last "worker ready" line
	stopped   bool
}

var live struct {
	mu      sync.Mutex
	servers []*server
}

// cleanup stops every server still running; run at exit and on Ctrl-C.
func cleanup() {
	live.mu.Lock()
	servers := live.servers
	live.servers = nil
	live.mu.Unlock()
	for _, s := range servers {
		s.stop()
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// start installs the version's binary in a fresh directory and starts the
// named server there, with extra arguments after its own, returning once it
// serves.
func (e *runEnv) start(name, version string, extra ...string) (*server, error) {
	return e.startGroups(name, version, gozdGroups, extra...)
}

// gozdGroups are the groups of gozd's config: the http group and the tcp
// echo group every other server has too.
const gozdGroups = "[web]\nmode http\nlisten 127.0.0.1:0\n\n[echo]\nmode tcp\nlisten 127.0.0.1:0\n"

// startGroups is start with groups as the group sections of gozd's config
// (other servers ignore it).
func (e *runEnv) startGroups(name, version, groups string, extra ...string) (*server, error) {
	for attempt := 1; ; attempt++ {
		s, err := e.startGroupsOnce(name, version, groups, extra...)
		// tableflip binds addresses the bench found free a moment
		// before: one taken meanwhile by another socket is bad luck,
		// not the server's failure.
		if err != nil && name == "tableflip" && attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			logf("  %s: an address it was given was taken meanwhile; starting it again", name)
			continue
		}
		return s, err
	}
}

func (e *runEnv) startGroupsOnce(name, version, groups string, extra ...string) (*server, error) {
	e.seq++
	s := &server{name: name, dir: filepath.Join(e.tmp, fmt.Sprintf("run%d-%s", e.seq, name)), log: newLogBook(), exited: make(chan struct{}), under: e.under}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	s.bin = filepath.Join(s.dir, name+"-server")
	if err := install(e.bins[name][version], s.bin); err != nil {
		return nil, err
	}
	var args []string
	switch name {
	case "gozd":
		var lim syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		conf := filepath.Join(s.dir, "bench.conf")
		s.pidFile = filepath.Join(s.dir, "gozd.pid")
		maxfds := fmt.Sprintf("maxfds %d\n", lim.Cur)
		if len(e.under) > 0 {
			maxfds = "" // valgrind keeps a few descriptors below the limit for itself
		}
		text := fmt.Sprintf("pidfile %s\ndrain_timeout 10s\n%s\n%s", s.pidFile, maxfds, groups)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, err
		}
		args = []string{"-f", "-c", conf}
	case "tableflip":
		// tableflip finds an inherited listener by the address it
		// was asked for: two on 127.0.0.1:0 would be mixed up.
		s.pidFile = filepath.Join(s.dir, "tableflip.pid")
		httpAddr, err1 := freeAddr()
		tcpAddr, err2 := freeAddr()
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		args = []string{"-pid-file", s.pidFile, "-http", httpAddr, "-tcp", tcpAddr}
	}

	if err := s.launch(append(args, extra...), e.underEnv); err != nil {
		return nil, err
	}
	if err := s.waitServing(); err != nil {
		s.stop()
		return nil, fmt.Errorf("starting %s: %w; its output:\n%s", name, err, s.log.tail(20))
	}
	return s, nil
}

// launch starts the installed binary with args (and env added to the
// bench's environment) in the server's directory, collecting its output in
// the log book.
func (s *server) launch(args, env []string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	argv := append(slices.Clone(s.under), s.bin)
	s.cmd = exec.Command(argv[0], append(argv[1:], args...)...)
	s.cmd.Dir = s.dir
	if env != nil {
		s.cmd.Env = append(os.Environ(), env...)
	}
	// A file, not a writer: exec then copies nothing and closes nothing,
	// so tableflip's later processes, which inherit it, can write to it
	// after the first one has exited.
	s.cmd.Stdout, s.cmd.Stderr = w, w
	// Its own process group: a Ctrl-C of the bench reaches the bench
	// alone, which stops the servers by pid.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = s.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return err
	}
	live.mu.Lock()
	live.servers = append(live.servers, s)
	live.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.log.add(sc.Text())
		}
		r.Close()
		s.log.end()
	}()
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	return nil
}

// waitServing reads the addresses and the serving pid from the start output.
func (s *server) waitServing() error {
	const timeout = 30 * time.Second
	if s.name == "gozd" {
		// gozd: started, pid N; web http on ADDR; echo tcp on ADDR
		line, _, err := s.log.waitFor(0, func(l string) bool { return strings.HasPrefix(l, "gozd: started") }, timeout)
		if err != nil {
			return err
		}
		s.addrs = map[string]string{}
		for _, part := range strings.Split(line, "; ")[1:] {
			// NAME MODE on ADDR
			if f := strings.Fields(part); len(f) == 4 {
				s.addrs[f[0]] = f[3]
			}
		}
		s.httpAddr, s.tcpAddr = s.addrs["web"], s.addrs["echo"]
		pid, _, err := s.nextReady(0, timeout)
		if err != nil {
			return err
		}
		s.setServing(pid)
	} else {
		// ready pid N http ADDR tcp ADDR
		line, _, err := s.log.waitFor(0, func(l string) bool { return strings.HasPrefix(l, "ready pid ") }, timeout)
		if err != nil {
			return err
		}
		var pid int
		if _, err := fmt.Sscanf(line, "ready pid %d http %s tcp %s", &pid, &s.httpAddr, &s.tcpAddr); err != nil {
			return fmt.Errorf("parsing %q: %w", line, err)
		}
		s.setServing(pid)
	}
	if s.httpAddr == "" || s.tcpAddr == "" {
		return errors.New("no addresses in the start output")
	}
	return nil
}

func (s *server) setServing(pid int) {
	s.serving = pid
	s.seen = append(s.seen, pid)
}

// nextReady waits for gozd's master to log a worker ready, from log index
// from on, and returns the worker's pid and the master's "after" figure.
func (s *server) nextReady(from int, timeout time.Duration) (pid int, after time.Duration, err error) {
	line, _, err := s.log.waitFor(from, func(l string) bool { return strings.Contains(l, `msg="worker ready"`) }, timeout)
	if err != nil {
		return 0, 0, fmt.Errorf("waiting for the master to log a worker ready: %w", err)
	}
	s.lastReady = line
	pid, err = strconv.Atoi(logField(line, "worker"))
	if err != nil {
		return 0, 0, fmt.Errorf("no worker pid in %q", line)
	}
	after, err = time.ParseDuration(logField(line, "after"))
	if err != nil {
		return 0, 0, fmt.Errorf("no after= in %q", line)
	}
	return pid, after, nil
}

// logField returns the value of key=value in a gozd (slog text) log line.
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if u, err := strconv.QuotedPrefix(v); err == nil {
			s, _ := strconv.Unquote(u)
			return s
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// signalReload asks for a reload the server's way: SIGHUP to gozd's master,
// SIGHUP to tableflip's newest process.
func (s *server) signalReload() error {
	pid := s.serving
	if s.name == "gozd" {
		pid = s.pid()
	}
	return syscall.Kill(pid, syscall.SIGHUP)
}

// reloaded learns the new serving process after a reload that began at log
// index from. after is gozd's own ready figure (0 for tableflip).
func (s *server) reloaded(from int, timeout time.Duration) (after time.Duration, err error) {
	old := s.serving
	var pid int
	if s.name == "gozd" {
		if pid, after, err = s.nextReady(from, timeout); err != nil {
			return 0, err
		}
	} else {
		// tableflip writes the pid file when the new process is Ready.
		deadline := time.Now().Add(timeout)
		for {
			b, _ := os.ReadFile(s.pidFile)
			if pid, _ = strconv.Atoi(strings.TrimSpace(string(b))); pid != 0 && pid != old {
				break
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("pid file %s still names %d after %v", s.pidFile, old, timeout)
			}
			time.Sleep(time.Millisecond)
		}
	}
	s.setServing(pid)
	return after, nil
}

// pids are the processes whose memory counts: gozd's master and worker, or
// the one serving process.
func (s *server) pids() []int {
	if s.name == "gozd" {
		return []int{s.pid(), s.serving}
	}
	return []int{s.serving}
}

// waitGone waits until pid has exited, polling every millisecond, and
// reaps it if it became the bench's child (tableflip's processes after the
// first are re-parented to the bench, a child subreaper).
func (s *server) waitGone(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !gone(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s pid %d still running after %v", s.name, pid, timeout)
		}
		time.Sleep(time.Millisecond)
	}
	if pid != s.pid() {
		// Blocking: a Go process's main thread shows as a zombie while
		// its other threads are still exiting, and until they have,
		// WNOHANG finds nothing to reap. Left unreaped, the process's
		// CPU time never reached the bench's own (cutime), and the
		// report counted it as other processes' load.
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
	}
	return nil
}

// stop ends the server gracefully, by pid, and kills what outlives a bound.
func (s *server) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	live.mu.Lock()
	for i, l := range live.servers {
		if l == s {
			live.servers = append(live.servers[:i], live.servers[i+1:]...)
			break
		}
	}
	live.mu.Unlock()
	pids := []int{s.pid()}
	if s.name == "tableflip" {
		pids = append(pids, s.seen...)
	}
	for _, pid := range pids {
		if !gone(pid) {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	for _, pid := range pids {
		if s.waitGone(pid, 15*time.Second) != nil {
			syscall.Kill(pid, syscall.SIGKILL)
			s.waitGone(pid, 5*time.Second)
		}
	}
	if s.name == "gozd" {
		// The master stops its workers; make sure.
		for _, pid := range s.seen {
			if !gone(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
	}
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// gone reports whether pid has exited: no /proc entry, or a zombie.
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

// raiseFileLimit lifts RLIMIT_NOFILE to want, or as far as the hard limit
// allows, so that thousands of idle connections fit; the servers inherit it.
func raiseFileLimit(want int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if uint64(want) > lim.Max {
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: uint64(want), Max: uint64(want)}) == nil {
			return nil
		}
	}
	lim.Cur = max(lim.Cur, min(uint64(want), lim.Max))
	// Set even when unchanged: a process that called Setrlimit hands its
	// limit to its children, where Go would restore the original one.
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// becomeSubreaper makes the orphans of tableflip's upgrades the bench's
// children, so it can reap them.
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// startSteps are the steps of a gozd worker's start, as its master's
// "worker ready" line gives them (timeline.go in the gozd package).
type startSteps struct {
	fork, main, ready time.Duration // signal_to_fork, exec_to_main, main_to_ready
}

func (st startSteps) total() time.Duration { return st.fork + st.main + st.ready }

// isDrainingLine reports whether l is gozd's master saying that worker old
// drains.
func isDrainingLine(l string, old int) bool {
	return strings.Contains(l, `worker draining"`) && logField(l, "worker") == strconv.Itoa(old)
}

// drainAfter is how long the old worker took to answer the drain order,
// which it does once its listeners are closed: the after= of its master's
// "worker draining" line; 0 when the line has none.
func drainAfter(line string) time.Duration {
	d, _ := time.ParseDuration(logField(line, "after"))
	return d
}

// stoppedAccepting is drainAfter of the "worker draining" line of gozd's old
// worker old, logged since log mark from; 0 when it does not come.
func (s *server) stoppedAccepting(from, old int) time.Duration {
	line, _, err := s.log.waitFor(from, func(l string) bool { return isDrainingLine(l, old) }, 5*time.Second)
	if err != nil {
		return 0
	}
	return drainAfter(line)
}

// readySteps reads the steps from a "worker ready" line; ok is false when
// the line lacks one (a start that was no reload).
func readySteps(line string) (st startSteps, ok bool) {
	for _, f := range []struct {
		key string
		d   *time.Duration
	}{{"signal_to_fork", &st.fork}, {"exec_to_main", &st.main}, {"main_to_ready", &st.ready}} {
		d, err := time.ParseDuration(logField(line, f.key))
		if err != nil {
			return st, false
		}
		*f.d = d
	}
	return st, true
}

package gozd

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Exit statuses of a gozd program that Daemonize ends.
const (
	ExitOK    = 0
	ExitError = 1 // the command failed; the message is on stderr
	ExitUsage = 2 // bad command line
)

// options are the command-line flags Daemonize reads.
type options struct {
	config     string // absolute path
	signal     string
	test       bool // -t: check the config and exit
	json       bool // -json: -s status in JSON
	foreground bool
	verbose    bool
	exe        string         // the binary workers are started from
	sigs       chan os.Signal // daemonSignals, caught since Daemonize began; nil outside a daemon
}

var std struct {
	mu  sync.Mutex
	d   *Daemon
	log *slog.Logger // the worker's, for Logger
}

// Daemonize reads the command line (-c FILE, -s stop|quit|reopen|reload|status,
// -json, -f, -v, -t, defined on flag.CommandLine unless the program defined
// them first, so it may add flags of its own) and does what it says. It returns only in a worker, the process
// that runs the program's handlers: there it returns a channel that is
// closed once this worker has finished serving and drained its connections.
//
// Everything else ends the process: -t checks the config, reports every
// error and exits; -s sends the command to the running daemon, waits for
// its outcome and exits (-s status prints what the daemon does, as JSON
// with -json, and exits 3 when none runs);
// without -s the process becomes the master (in the foreground with -f,
// else detached, after the launching command has seen the daemon serve),
// which never runs the program's own code. Errors are
// printed to stderr, with file:line for config errors, and exit non-zero.
func Daemonize() <-chan struct{} {
	daemonizeBegan = time.Now() // a reload's timeline (timeline.go)
	// First of all, before the pid file is written or a listener used: a
	// signal that arrives from now on waits for the master's loop or the
	// worker instead of killing the process.
	sigs := catchSignals()
	opts, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		releaseSignals(sigs)
		fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		flag.CommandLine.Usage()
		os.Exit(ExitUsage)
	}
	h, err := readHandover()
	if err == nil && h != nil {
		var d *Daemon
		var done <-chan struct{}
		if d, done, err = runWorker(h, sigs); err == nil {
			std.mu.Lock()
			std.d, std.log = d, d.log
			std.mu.Unlock()
			// The program's slog and log lines carry the worker's
			// pid and generation, in the config's format.
			slog.SetDefault(d.log)
			return done
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gozd: %v\n", err)
		os.Exit(ExitError)
	}
	if isDaemon(opts) {
		opts.sigs = sigs
	} else {
		releaseSignals(sigs)
	}
	os.Exit(run(opts))
	return nil
}

// RegistHandler registers handler for the group named group of the running
// worker's config: a func(Conn) or a server value (see Daemon.HandleServer)
// for a tcp group; an http.Handler or a func(http.ResponseWriter,
// *http.Request) for http, https and fcgi groups, or an *http.Server for
// http and https; a func(PacketConn) for a udp group.
// name labels the handler in gozd's log. The worker starts serving, and tells
// the master it is ready, once every group has its handler.
//
// An unknown group, a handler of the wrong kind or a second handler for a
// group is an error naming the group.
func RegistHandler(group, name string, handler any) error {
	std.mu.Lock()
	d := std.d
	std.mu.Unlock()
	if d == nil {
		return ErrNotDaemonized
	}
	var err error
	switch h := handler.(type) {
	case func(Conn):
		err = d.HandleConn(group, h)
	case func(http.ResponseWriter, *http.Request):
		err = d.HandleFunc(group, h)
	case func(PacketConn):
		err = d.HandlePacket(group, h)
	case *http.Server:
		err = d.HandleServer(group, h)
	case http.Handler:
		// A value that is both (*grpc.Server) is a handler on http
		// and https groups, a server on tcp groups.
		if g, ok := d.cfg.Group(group); ok && g.Mode == ModeTCP {
			if srv, ok := h.(Server); ok {
				err = d.HandleServer(group, srv)
				break
			}
		}
		err = d.Handle(group, h)
	case Server:
		err = d.HandleServer(group, h)
	default:
		err = fmt.Errorf("group %q: %w: %T is neither func(gozd.Conn), func(gozd.PacketConn), an http handler nor a server with Serve(net.Listener)", group, ErrHandlerKind, handler)
	}
	if err == nil {
		d.log.Debug("handler registered", "group", group, "handler", name)
	}
	return err
}

// parseFlags defines gozd's flags on fs unless the program did, and parses
// args.
func parseFlags(fs *flag.FlagSet, args []string) (*options, error) {
	opts := &options{}
	define := func(name, usage string, p any) {
		if fs.Lookup(name) != nil {
			return
		}
		switch p := p.(type) {
		case *string:
			fs.StringVar(p, name, "", usage)
		case *bool:
			fs.BoolVar(p, name, false, usage)
		}
	}
	define("c", "configuration `file`", &opts.config)
	define("s", "send `signal` to the running daemon: stop, quit, reopen or reload; or status to show what it does", &opts.signal)
	define("f", "run in the foreground, logging to stderr", &opts.foreground)
	define("v", "verbose gozd log", &opts.verbose)
	define("t", "test the configuration file: report every error and exit, starting nothing", &opts.test)
	define("json", "with -s status: print the status as JSON", &opts.json)
	if !fs.Parsed() {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
	}
	// The program may have defined (and parsed) any of these flags itself:
	// read them from the flag set, whoever owns them.
	value := func(name string) string { return fs.Lookup(name).Value.String() }
	opts.config, opts.signal = value("c"), value("s")
	opts.foreground, opts.verbose = value("f") == "true", value("v") == "true"
	opts.test = value("t") == "true"
	opts.json = value("json") == "true"
	if _, ok := os.LookupEnv(envWorker); ok {
		return opts, nil
	}
	if opts.test && opts.signal != "" {
		return nil, errors.New("-t tests the configuration and -s sends a command: use one of them")
	}
	if opts.signal != "" {
		if _, ok := controlSignals[opts.signal]; !ok && opts.signal != "status" {
			return nil, fmt.Errorf("unknown -s command %q: want stop, quit, reopen, reload or status", opts.signal)
		}
	}
	if opts.config == "" {
		return nil, errors.New("no configuration file: use -c FILE")
	}
	var err error
	if opts.config, err = filepath.Abs(opts.config); err != nil {
		return nil, err
	}
	if opts.exe, err = executablePath(); err != nil {
		return nil, err
	}
	return opts, nil
}

// executablePath is the path workers are started from: the one this program
// was invoked by, made absolute, with symlinks left alone, so that a deploy
// that flips a "current" symlink or renames a new binary into place is what
// the next worker runs. (os.Executable would name the old file.)
func executablePath() (string, error) {
	arg0 := os.Args[0]
	if !strings.Contains(arg0, "/") {
		p, err := exec.LookPath(arg0)
		if err != nil {
			return "", fmt.Errorf("finding the program's binary: %w", err)
		}
		arg0 = p
	}
	return filepath.Abs(arg0)
}

// run is the process's life outside a worker; it returns the exit status.
func run(opts *options) int {
	if opts.test {
		return testConfig(opts.config)
	}
	if opts.signal == "status" {
		return statusCommand(opts, os.Stdout)
	}
	if opts.signal != "" {
		msg, err := control(opts, opts.signal)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gozd: %v\n", err)
			return ExitError
		}
		fmt.Println(msg)
		return ExitOK
	}
	closeOnExecFrom(3)
	cfg, err := LoadConfig(opts.config)
	if err != nil {
		printErrors(err)
		return ExitError
	}
	if fd, ok := os.LookupEnv(envMaster); ok {
		os.Unsetenv(envMaster)
		return runBackgroundMaster(opts, cfg, fd)
	}
	if opts.foreground {
		if cfg.LogFile != "" {
			// The foreground logs to stderr, but a log file the
			// daemon could not write in the background is a mistake
			// to report now, not at the next start.
			f, err := openLogFile(cfg.LogFile)
			if err != nil {
				fmt.Fprintf(os.Stderr, "gozd: %v\n", err)
				return ExitError
			}
			f.Close()
		}
		log := newLogger(os.Stderr, opts.verbose, "master", 0)
		if cfg.LogFile != "" {
			log.Info("logging to stderr in the foreground; the logfile is for background starts", "logfile", cfg.LogFile)
		}
		return runMaster(opts, cfg, func(line string, err error) {
			if err == nil {
				fmt.Println(line)
			} else {
				// Plainly, as a start without -f reports it, not
				// only quoted in the log line.
				fmt.Fprintf(os.Stderr, "gozd: %v\n", err)
			}
		})
	}
	return launch(opts, cfg)
}

// launch starts the master detached (new session, stdin from /dev/null,
// output to the log file) and waits until it reports that the first worker
// serves every group, or why it could not.
func launch(opts *options, cfg *Config) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "gozd: %v\n", err)
		return ExitError
	}
	// The master checks again under the lock; this is to answer before
	// starting anything. A pid file gozd cannot trust is refused here.
	if cfg.PidFile == "" {
		if err := defaultRunDir(cfg).ensure(); err != nil {
			return fail(err)
		}
	}
	if pid, _, err := runningPid(pidPath(cfg)); err == nil {
		return fail(fmt.Errorf("%w (pid %d, pid file %s)", ErrAlreadyRunning, pid, pidPath(cfg)))
	} else if !errors.Is(err, ErrNotRunning) {
		return fail(err)
	}
	logFile, err := openLog(cfg)
	if err != nil {
		return fail(err)
	}
	defer logFile.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fail(err)
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	dir, err := os.Getwd()
	if err != nil {
		return fail(err)
	}
	env := append(os.Environ(), envMaster+"=3")
	pid, err := syscall.ForkExec(opts.exe, os.Args, &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{devnull.Fd(), logFile.Fd(), logFile.Fd(), w.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	w.Close()
	if err != nil {
		return fail(fmt.Errorf("starting the daemon: %w", err))
	}
	wait := cfg.readyTimeout() + 15*time.Second
	r.SetReadDeadline(time.Now().Add(wait))
	line, rerr := bufio.NewReader(r).ReadString('\n')
	status, msg, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	switch {
	case status == "ok":
		fmt.Println(msg)
		fmt.Printf("gozd: log %s; pid file %s\n", logPath(cfg), pidPath(cfg))
		return ExitOK
	case status == "error":
		return fail(errors.New(strings.ReplaceAll(msg, `\n`, "\n")))
	case errors.Is(rerr, os.ErrDeadlineExceeded):
		syscall.Kill(pid, syscall.SIGINT)
		return fail(fmt.Errorf("daemon pid %d did not report within %s; stopped it; see %s", pid, wait, logPath(cfg)))
	}
	return fail(fmt.Errorf("daemon pid %d exited during start; see %s", pid, logPath(cfg)))
}

// runBackgroundMaster is the master started by launch: it reports the first
// start through the pipe named by fd, then carries on alone.
func runBackgroundMaster(opts *options, cfg *Config, fd string) int {
	n, err := strconv.Atoi(fd)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gozd: bad %s=%q\n", envMaster, fd)
		return ExitError
	}
	pipe := os.NewFile(uintptr(n), "gozd-launcher")
	return runMaster(opts, cfg, func(line string, err error) {
		if err != nil {
			fmt.Fprintf(pipe, "error %s\n", strings.ReplaceAll(err.Error(), "\n", `\n`))
		} else {
			fmt.Fprintf(pipe, "ok %s\n", line)
		}
		pipe.Close()
	})
}

// closeOnExecFrom marks every descriptor from fd up close-on-exec, so that
// nothing the caller left open reaches the daemon's processes: a pipe held
// by a background daemon keeps, say, `out=$(app -c conf)` waiting for ever.
// The files gozd hands to a process it starts are passed explicitly.
func closeOnExecFrom(fd int) {
	if unix.CloseRange(uint(fd), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	// Kernels before 5.11 have no CLOSE_RANGE_CLOEXEC.
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && n >= fd {
			syscall.CloseOnExec(n)
		}
	}
}

// testConfig is -t: it checks the config at path as a start or a reload
// would (parse, key pairs, user, group and owner lookups, addresses for form
// and clashes, key files readable by the workers' account), binding nothing
// and touching no pid file, and prints every error or "configuration ok".
func testConfig(path string) int {
	cfg, err := LoadConfig(path)
	if err == nil {
		err = checkAccounts(cfg)
	}
	if err != nil {
		printErrors(err)
		return ExitError
	}
	fmt.Printf("%s: configuration ok\n", cfg.File)
	return ExitOK
}

// printErrors writes err to stderr, each error of a ConfigErrors on a line
// of its own.
func printErrors(err error) {
	var list ConfigErrors
	if errors.As(err, &list) {
		for _, ce := range list {
			fmt.Fprintf(os.Stderr, "gozd: %v\n", ce)
		}
		if len(list) >= maxConfigErrors {
			fmt.Fprintf(os.Stderr, "gozd: stopped after %d errors\n", maxConfigErrors)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "gozd: %v\n", err)
}

// Worker returns the Daemon of this worker once Daemonize has returned, and
// nil in any other process (or before). It is the Daemon that RegistHandler
// registers with: a program may use its Handle, HandleConn, HandleServer,
// HandlePacket, Ready, Draining and Addrs in production exactly as its tests
// use a Daemon of their own.
func Worker() *Daemon {
	std.mu.Lock()
	defer std.mu.Unlock()
	return std.d
}

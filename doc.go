// Package gozd is a configurable zero-downtime daemon framework: a program
// declares its listeners in a config file — groups of tcp, http, https,
// fcgi or udp on ports or unix sockets — registers a handler per group, and gets
// background start, a pid file, nginx-style -s control, graceful draining,
// and restarts into a new binary that refuse, fail or cut no connection.
//
// # The seed API
//
//	func main() {
//		daemonChan := gozd.Daemonize() // -c FILE, -s CMD, -f, -v, -t
//		if err := gozd.RegistHandler("web", "serveHTTP", serveHTTP); err != nil {
//			log.Fatal(err)
//		}
//		if err := gozd.RegistHandler("echo", "serveTCP", serveTCP); err != nil {
//			log.Fatal(err)
//		}
//		<-daemonChan // this worker has drained; clean up and return
//	}
//
// Beneath it, [Daemon] serves the groups of a [Config] in one process, in
// the style of net/http: New, Handle, Serve(ctx), Shutdown(ctx), Close.
//
// # Which API when
//
// A program run by gozd's master calls Daemonize, which returns in a worker
// only. The seed API (Daemonize, RegistHandler) is kept, spelling and all,
// so that programs written for the original gozd build unchanged. In a
// worker, [Worker] returns the worker's *Daemon, the one RegistHandler
// registers with: use its Handle, HandleConn, HandleServer, HandlePacket,
// Ready, Draining and Addrs there, exactly as a test does on a Daemon of its
// own made with New and Serve (no master, no reload, no pid file).
//
//   - [Draining]: a handler that holds a connection beyond a request (a
//     hijacked websocket, a stream) learns that a reload or stop began; a
//     tcp handler selects on Conn.Context instead, a udp one on
//     PacketConn.Context.
//   - Conn.Handoff and Conn.Resumed: a tcp session that carries on in the
//     new worker of a reload, with its state.
//   - [Logger]: the program's own log lines, in gozd's log with the
//     worker's pid and generation (slog and log go there too).
//   - [New], [LoadConfig], [ParseConfig], [Daemon.Serve], [Daemon.Shutdown],
//     [Daemon.LameDuck]: gozd in a test, or embedded in a program that
//     manages its own process.
//
// # Handlers and servers
//
//	mode         takes
//	tcp          func(Conn), or a Server: any value with Serve(net.Listener) error
//	             (*grpc.Server: GracefulStop at the drain, Stop at drain_timeout)
//	http, https  http.Handler, func(http.ResponseWriter, *http.Request), or an
//	             *http.Server whose settings are kept (see Daemon.HandleServer)
//	fcgi         http.Handler, func(http.ResponseWriter, *http.Request)
//	udp          func(PacketConn), run once per worker; at the drain ReadFrom
//	             fails with net.ErrClosed, WriteTo still works, and the
//	             master keeps the socket so no datagram is lost
//
// The config's protocols directive (http1, h2, h2c) chooses what an http or
// https group speaks, client_ca FILE makes an https group require client
// certificates from those CAs.
//
// # Configuration
//
// The file (-c) holds global directives, then one [Name] section per group.
// A value may sit in brackets, "#" starts a comment, relative paths are
// relative to the file, durations are Go durations or seconds:
//
//	pidfile        PATH      default <name>.pid in a private directory (see Files)
//	logfile        PATH      background log; default <name>.log beside the pid file
//	drain_timeout  30s       how long a draining worker may take
//	ready_timeout  60s       how long a new worker may take to serve every group
//	user           NAME|UID  workers run as this account; the master stays root
//	group          NAME|GID  with user only
//	maxfds         N         RLIMIT_NOFILE of master and workers
//	start_boost    N         nice levels the master, and a new worker until ready, run above normal (default 10, 0 off)
//	shutdown_delay D         lame duck before a graceful stop's drain (default 0)
//	log_level      LEVEL     debug, info (default), warn, error; a reload applies it
//	log_format     FORMAT    text (default) or json; a reload applies it
//
//	[web]
//	mode       MODE          tcp, http, https, fcgi or udp
//	listen     ADDR          host:port, :port, port, [::1]:port, /path.sock, unix:path
//	key, cert  PATH          https: PEM key and certificate chain
//	client_ca  PATH          https: require client certificates from these CAs
//	protocols  P...          http: http1 (default), h2c; https: http1 h2 (default)
//	health     /PATH         http, https: 200 "ok", 503 from a stop's lame duck on
//	metrics    /PATH         http, https: Prometheus text format
//	chmod      0660          unix sockets: the socket file's mode
//	owner      USER:GROUP    unix sockets: the socket file's owner (USER or :GROUP)
//
// A start, -t and -s reload report every error with its file:line ([ConfigError],
// [ConfigErrors]); a broken file starts nothing and reloads nothing.
//
// # Processes
//
// A gozd program runs as two kinds of process, both the same binary:
//
//   - The master binds every group's listener, writes and locks the pid file
//     and never changes pid, so kill -HUP PID, systemd and a container's
//     PID 1 always see one stable process. It runs no application code:
//     Daemonize never returns in it. It reaps every child.
//   - A worker is started by the master from the path the program was
//     invoked by (symlinks not resolved, so a deploy that flips a symlink or
//     renames a new binary into place is picked up), with the same
//     arguments, environment and directory, and the listeners as inherited
//     descriptors. Daemonize returns in it; it is ready once every group has
//     a handler. With the config's user (and group), workers run as that
//     account; group without user is a config error, since workers would
//     keep uid 0 and every capability.
//
// The master's stderr (the log file, or the terminal or journal with -f)
// carries its own log and its workers' output, line by line, through a
// buffer of 1 MiB: when the output stalls, lines past that are dropped and
// their number is logged once it takes lines again, so a stalled log stops
// neither the master (reloads, reaping, drain timers) nor a worker that
// logs. A reload reads the config and looks up the account off the master's
// loop, too: a hung NSS or LDAP delays that reload only.
//
// If the master dies on its own (kill -9, a crash), each worker sees its
// control socket close and drains as on -s quit: it stops accepting,
// finishes its in-flight requests within drain_timeout, and exits. The
// service is then down until the master is started again: run it under a
// supervisor that restarts it (Restart=on-failure, see examples/systemd; a
// container restart policy, see examples/container). The pid file lock dies
// with the master and a stale socket file is removed at the next start, so
// that start succeeds at once. (A master that is a container's PID 1 takes
// every process of the container with it: there the workers cannot finish.)
//
// # Reload
//
//	SIGHUP ─► master re-reads the config ──(broken: log file:line, done)
//	          keeps unchanged listeners, binds added ones
//	          starts worker N+1 with them ──(exits, crashes, not ready in
//	          │                              ready_timeout: killed, logged
//	          │                              with its output; N serves on)
//	          ▼ worker N+1: "ready"
//	          tells worker N to drain, passing it N+1's handoff socket;
//	          closes removed listeners
//	          worker N: stops accepting (the master still holds the socket:
//	          the backlog waits for N+1), hands idle connections to N+1,
//	          busy ones as their response ends, tells long-lived handlers
//	          (Draining, Conn.Context), force-closes what remains after
//	          drain_timeout, exits once nothing is left
//
// A SIGHUP during a reload starts no second worker: it queues one more
// reload for when the current one ends, so the newest binary wins.
//
// A reload is as quick as the new worker's start, and under load that start
// competes for the CPU with the old worker it replaces. A master that may
// raise priorities (root, or CAP_SYS_NICE) therefore runs start_boost nice
// levels (default 10) above the priority it was started with, and so does a
// new worker, which inherits it, until it is ready: then it puts all its
// threads back to the master's original priority. On a busy 2-core machine
// this took the median reload from about 20 to about 14 ms. Requests the old
// worker serves meanwhile wait for those few milliseconds of CPU; between
// reloads the master does next to nothing. start_boost 0 turns it off;
// without the privilege it is off, and the master says so at start.
//
// The master keeps little: a second after its start and after each reload,
// and once it has been quiet for a second after a burst of worker reports,
// state file writes or metrics scrapes, it returns its free heap to the
// system and drops its binary's and libraries' pages from its page tables;
// they stay in the page cache, and what it runs next faults them back. It
// runs with GOGC 25 unless the environment sets GOGC. A worker drops its
// binary's and shared libraries' pages once, a second after it is ready:
// what its start ran (every package's init, the config, the handlers'
// registration) is not run again. Read-only files the program maps itself
// keep their pages.
//
// A kept unix socket keeps its file; a changed chmod or owner is applied to
// it. A new one is bound in a private directory and renamed into place, so
// its file never has any other mode or owner than the configured ones.
//
// # What a reload does to a connection
//
// A reload closes no connection that the same server would not have closed
// without one. What moves: an HTTP/1.x connection of a plain http group
// (tcp or unix socket) that sits between requests with nothing of its next
// request read, and a FastCGI connection at a record boundary with no
// request open, are passed as descriptors (SCM_RIGHTS, in batches) to the
// new worker, which serves their next request as if it had just accepted
// them, with its own timeouts (until the request's first byte, the wait
// between requests: IdleTimeout, else ReadTimeout); bytes the kernel holds
// unread move with them. Until that first byte the new worker only watches
// such a connection (in an epoll set of its own: no goroutine, no buffers),
// and a reload meanwhile passes it on as it came.
// A connection busy at the drain moves when its response is done, without
// Connection: close; one whose next request is half read stays until that
// request is answered, then moves. The client sees the same connection
// answered by the new worker. A tcp session moves when its handler passes
// it, with its state, by Conn.Handoff; the new worker's handler gets the
// state from Conn.Resumed.
//
// What is told: a handler that holds a connection beyond a request (a
// hijacked websocket, a streaming response) selects on [Draining]; a tcp
// handler on Conn.Context(). Both are done the moment the drain begins.
// HTTP/2 connections get a graceful GOAWAY at once, as
// http.Server.Shutdown sends it; idle HTTP/1.1 connections over TLS stay
// open, their next response saying Connection: close, or close at their
// idle timeout.
//
// What falls back to the old drain (Connection: close on the response,
// an idle connection closed): connections of a group the new worker does
// not serve at the same address, everything when the new worker dies or
// stops taking connections, and anything left at drain_timeout. A TLS
// connection cannot move: its keys and sequence numbers live inside
// crypto/tls in the old process.
//
// Reload needs a built binary: "go run" builds into a temporary directory
// that is gone once it exits.
//
// # Signals
//
//	command    signal   to the master
//	-s stop    SIGINT   fast: close listeners and connections now, exit
//	-s quit    SIGQUIT  graceful: stop accepting, drain, remove the pid and
//	                    socket files, exit 0
//	(none)     SIGTERM  as SIGQUIT (systemd, containers)
//	-s reopen  SIGUSR1  reopen the log file (logrotate); workers log
//	                    through the master
//	-s reload  SIGHUP   zero-downtime restart into the binary now on disk
//	-s status  (none)   print master, workers, groups, last reload; exit 3
//	                    when no daemon runs (-json for scripts)
//
// With shutdown_delay set, SIGTERM, SIGQUIT and -s quit first enter the lame
// duck: health paths answer 503 while everything else is served and
// accepted as before, for shutdown_delay; then the drain runs. -s stop
// skips it.
//
// Workers run in their own process group, so a Ctrl-C in a terminal reaches
// the master alone, which then stops them. Signalled directly, a worker
// drains on SIGTERM and SIGQUIT (after its lame duck), stops on SIGINT and ignores SIGHUP and
// SIGUSR1.
//
// Daemonize catches these signals (and SIGPIPE) before anything else, before
// the pid file is written or a listener used: a signal that arrives while a
// master or worker starts waits for it instead of killing it or dumping its
// stacks. Call Daemonize first thing in main; a signal that arrives before
// it still acts as Go's default. With -s, and in the command that starts a
// daemon in the background, the signals keep their default action.
//
// # Files
//
// Without pidfile and logfile, the pid file, the state file beside it
// (<pidfile>.state, which -s status and -s reload read) and the log live in
// a directory private to the daemon's user, named for the config file:
// /run/gozd/<name>-<hash>/ for root, $XDG_RUNTIME_DIR/gozd/... or
// /tmp/gozd-<uid>/... for others, where <name> is the config file's name
// without its extension and <hash> comes from its absolute path; so -s
// needs the same -c path as the start. gozd refuses such a directory, pid or
// state file that another user could have planted or replaced, and -s
// signals a pid only once it has checked that it is this config's master
// (the pid file's lock, the state file, the executable and start time in
// /proc).
//
// # Logs, health and metrics
//
// Workers log through the master: one stream (the log file, or stderr with
// -f) where every line carries pid, role and, for a worker, gen. A panic in
// a handler costs its request only and is logged at ERROR with its stack.
// A group's health path answers 503 from the lame duck of a stop on, 200
// otherwise, also while its worker drains for a reload; its metrics path
// serves the master's counters (reloads, restarts, workers, connections,
// drains), which survive reloads, and the answering worker's Go runtime
// and process metrics. Process names read "app: master", "app: worker 7",
// "app: worker 6 draining". The master's "worker ready" line says where a
// start's time went: signal_to_fork (a reload's config read, bind, fork and
// exec), exec_to_main (the runtime's start and every package's init: keep
// init functions cheap, they run in the master and in every new worker) and
// main_to_ready (handlers registered, every group accepting); its "worker
// draining" line says, after=, how long the old worker took to answer the
// drain order, which it does once its listeners are closed.
//
// # systemd
//
// With NOTIFY_SOCKET set the master reports READY=1, RELOADING=1 and
// STOPPING=1; sockets passed by socket activation (LISTEN_FDS) are matched
// to groups by name (LISTEN_FDNAMES) or address instead of bound:
//
//	[Service]
//	Type=notify-reload
//	ExecStart=/usr/local/bin/app -f -c /etc/app.conf
//	KillSignal=SIGQUIT
//	TimeoutStopSec=45  # over shutdown_delay + drain_timeout + 5s
//	Restart=on-failure
package gozd

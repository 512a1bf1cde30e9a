// Package gozd is a configurable zero-downtime daemon framework: a program
// declares its listeners in a config file — groups of tcp, http, https,
// fcgi or udp on ports or unix sockets — registers a handler per group, and gets
// background start, a pid file, nginx-style -s control, graceful draining,
// and restarts into a new binary that refuse, fail or cut no connection.
//
// # The seed API
//
//	func main() {
//		daemonChan := gozd.Daemonize() // -c FILE, -s CMD, -f, -v
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
//     a handler.
//
// # Reload
//
//	SIGHUP ─► master re-reads the config ──(broken: log file:line, done)
//	          keeps unchanged listeners, binds added ones
//	          starts worker N+1 with them ──(exits, crashes, not ready in
//	          │                              ready_timeout: killed, logged
//	          │                              with its output; N serves on)
//	          ▼ worker N+1: "ready"
//	          tells worker N to drain; closes removed listeners
//	          worker N: stops accepting (the master still holds the socket:
//	          the backlog waits for N+1), turns keep-alives off, answers
//	          in-flight requests with Connection: close, closes idle
//	          connections, force-closes the rest after drain_timeout, exits
//
// A SIGHUP during a reload starts no second worker: it queues one more
// reload for when the current one ends, so the newest binary wins.
//
// A kept unix socket keeps its file; a changed chmod or owner is applied to
// it. A new one is bound in a private directory and renamed into place, so
// its file never has any other mode or owner than the configured ones.
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
//
// Workers run in their own process group, so a Ctrl-C in a terminal reaches
// the master alone, which then stops them.
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
//	TimeoutStopSec=45
package gozd

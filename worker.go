package gozd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"
)

// runWorker is Daemonize in a worker: it builds the default daemon on the
// inherited listeners, serves once every group has a handler, reports ready
// to the master, and drains on the master's order. sigs carries the signals
// caught since Daemonize began. The returned channel is closed once serving
// is over.
func runWorker(h *handover, sigs <-chan os.Signal) (*Daemon, <-chan struct{}, error) {
	ready := readyMessages(h) // under way from now on
	log, _ := newConfiguredLogger(os.Stderr, h.Verbose, "worker", h.Generation, h.Config)
	ctlFile := os.NewFile(workerControlFD, "gozd-control")
	ctl, err := net.FileConn(ctlFile)
	ctlFile.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("control socket from the master: %w", err)
	}
	d, err := New(h.Config, log)
	if err != nil {
		return nil, nil, err
	}
	if err := d.openInbox(h.Inbox); err != nil {
		return nil, nil, err
	}
	nameWorker(d, h.Generation)
	d.inherited = make(map[string]net.Listener, len(h.Listeners))
	names := make([]string, 0, len(h.Listeners))
	for name := range h.Listeners {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ln, err := listenerFromFD(h.Listeners[name], name)
		if err != nil {
			return nil, nil, fmt.Errorf("group %q: %w", name, err)
		}
		d.inherited[name] = ln
	}

	ctx, drain := context.WithCancel(context.Background())
	done := make(chan struct{})
	// Ready is told in Serve's goroutine, as it starts serving: handing it
	// to another goroutine cost a wake-up on a reload's path.
	d.onReady = func() {
		send := func(msg controlMsg) { fmt.Fprintf(ctl, "%s\n", msg) }
		startReports(h, d, send, done)
		io.WriteString(ctl, ready())
		log.Debug("ready")
		time.AfterFunc(trimDelay, dropStartPages)
		// Started: back to the master's priority, once the master has
		// the message that ends a reload.
		if h.Nice != nil {
			if err := setThreadsNice(*h.Nice); err != nil {
				log.Warn("putting the worker's threads back to the master's priority failed", "nice", *h.Nice, "err", err)
			}
		}
	}
	go func() {
		defer close(done)
		if err := d.Serve(ctx); err != nil && !errors.Is(err, ErrClosed) {
			// Nothing serves; the master sees the exit and keeps
			// the previous worker.
			fmt.Fprintf(os.Stderr, "gozd: %v\n", err)
			os.Exit(1)
		}
		log.Debug("drained")
		d.logHandoffs(log)
		d.waitPredecessor(h.Config.drainTimeout()) // it may hand over more, to pass on
	}()
	go func() {
		// Halfway to ready_timeout, say which groups still lack a
		// handler: the master quotes it if it has to kill this worker.
		late := time.NewTimer(h.Config.readyTimeout() / 2)
		defer late.Stop()
		select {
		case <-d.Ready():
		case <-d.Draining():
		case <-late.C:
			log.Warn("not ready: no handler registered for some groups", "groups", strings.Join(d.missingHandlers(), ", "))
		}
	}()
	go func() {
		// Orders from the master; EOF means the master is gone, and a
		// worker without a master drains and leaves.
		orders := &controlReader{conn: ctl}
		sc := bufio.NewScanner(orders)
		sc.Buffer(make([]byte, 0, lineBufferStart), maxControlLine)
		for sc.Scan() {
			msg, err := parseControlMsg(sc.Text())
			if err != nil {
				log.Warn("ignoring a message from the master", "err", err)
				continue
			}
			switch msg.kind {
			case msgLameDuck:
				d.LameDuck()
			case msgMetrics:
				if c := d.ops.metrics.master.Load(); c != nil {
					c.deliver(msg.payload)
				}
			case msgDrain:
				d.stopAccepting()
				d.setHeir(orders.takeFD()) // the new worker's inbox, if any
				d.replacedBy()
				fmt.Fprintf(ctl, "%s\n", controlMsg{kind: msgDraining, connections: d.connCount()})
				drain()
			case msgStop:
				d.Close()
			}
		}
		if err := sc.Err(); err != nil {
			log.Error("reading the master's orders failed; draining", "err", err)
		} else {
			log.Info("master gone; draining")
		}
		drain()
	}()
	go workerSignals(sigs, d, drain, log)
	return d, done, nil
}

// workerSignals lets an operator who signals a worker directly get what the
// same signal does to the master: graceful or fast stop. A reload is the
// master's job, and so is the log file. A broken stderr pipe (the master
// died) must not kill the worker while it drains: SIGPIPE is caught too.
func workerSignals(sigs <-chan os.Signal, d *Daemon, drain func(), log *slog.Logger) {
	for sig := range sigs {
		switch sig {
		case syscall.SIGTERM, syscall.SIGQUIT:
			d.lameDuckThenDrain(drain)
		case syscall.SIGINT:
			d.Close()
		case syscall.SIGHUP:
			log.Info("SIGHUP to a worker is ignored; send it to the master to reload")
		case syscall.SIGUSR1:
			log.Info("SIGUSR1 to a worker is ignored; send it to the master to reopen the log")
		}
	}
}

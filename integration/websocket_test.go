package integration

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestWebsocketReloads serves examples/websocket (an echo on an http group
// that closes its websockets with 1012 when gozd.Draining fires) to several
// clients and reloads the master four times by SIGHUP. At every reload each
// client gets close code 1012, not a broken connection, reconnects, is
// served by the new worker, and resends what was not echoed: every client
// gets every one of its numbered messages echoed once, in order. The old
// workers exit as soon as their websockets are closed, long before
// drain_timeout.
func TestWebsocketReloads(t *testing.T) {
	const (
		clients      = 5
		reloads      = 4
		drainTimeout = 2 * time.Minute
		// An old worker whose handlers return on Draining exits in
		// about a close handshake; one that ignored it would take
		// drain_timeout.
		promptExit = 10 * time.Second
	)
	bin := buildProgram(t, "./examples/websocket")
	conf := writeConf(t, "drain_timeout %s\n[ws]\nmode http\nlisten 127.0.0.1:0\n", drainTimeout)
	m := startMaster(t, bin, conf)
	url := "ws://" + m.addr("ws") + "/"

	stop := make(chan struct{})
	var wg sync.WaitGroup
	cs := make([]*wsClient, clients)
	for i := range cs {
		cs[i] = &wsClient{url: url}
		wg.Go(func() { cs[i].run(stop) })
	}
	stopped := false
	stopClients := func() {
		if stopped {
			return
		}
		stopped = true
		close(stop)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * wait):
			t.Error("the clients did not stop")
		}
	}
	defer stopClients()

	// servedBy waits until every client has had 20 more messages echoed,
	// the last by one worker other than previous, and returns its pid.
	servedBy := func(previous string, echoed []int) string {
		t.Helper()
		deadline := time.Now().Add(2 * wait)
		for {
			pid, all := "", true
			for i, c := range cs {
				st := c.state()
				if st.err != nil {
					t.Fatalf("client %d: %v", i, st.err)
				}
				last := ""
				if len(st.pids) > 0 {
					last = st.pids[len(st.pids)-1]
				}
				if st.next < echoed[i]+20 || last == previous || (pid != "" && last != pid) {
					all = false
					break
				}
				pid = last
			}
			if all {
				return pid
			}
			if time.Now().After(deadline) {
				for i, c := range cs {
					st := c.state()
					t.Logf("client %d: %d echoed (%d before), workers %v, %d restarts", i, st.next, echoed[i], st.pids, st.restarts)
				}
				t.Fatalf("the clients were not all served by one new worker (not pid %s) within %s", previous, 2*wait)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	echoed := func() []int {
		n := make([]int, len(cs))
		for i, c := range cs {
			n[i] = c.state().next
		}
		return n
	}

	workers := []string{servedBy("", echoed())}
	afterRe := regexp.MustCompile(`msg="old worker exited" .*worker=(\d+) .*after=(\S+)`)
	for i := 1; i <= reloads; i++ {
		before := echoed()
		m.reload(i)
		exits := afterRe.FindAllStringSubmatch(m.out.String(), -1)
		if len(exits) < i {
			t.Fatalf("reload %d: %d exit lines", i, len(exits))
		}
		exit := exits[i-1]
		took, err := time.ParseDuration(exit[2])
		if err != nil {
			t.Fatalf("reload %d: %q: %v", i, exit[0], err)
		}
		if exit[1] != workers[i-1] {
			t.Errorf("reload %d: worker %s exited; want %s", i, exit[1], workers[i-1])
		}
		if took > promptExit {
			t.Errorf("reload %d: old worker %s took %s to exit; want well under drain_timeout %s", i, exit[1], took, drainTimeout)
		}
		// The handlers have returned (the old worker is gone), so each
		// client's 1012 is on its way; the client reads it in its own
		// time.
		for j, c := range cs {
			deadline := time.Now().Add(wait)
			for c.state().restarts < i && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if st := c.state(); st.restarts < i {
				t.Errorf("reload %d: client %d saw %d closes with 1012 within %s; want %d", i, j, st.restarts, wait, i)
			}
		}
		workers = append(workers, servedBy(workers[i-1], before))
		t.Logf("reload %d: worker %s exited after %s; clients served by %s", i, exit[1], took, workers[i])
	}
	stopClients()

	for i, c := range cs {
		st := c.state()
		if st.err != nil {
			t.Errorf("client %d: %v", i, st.err)
		}
		// Each worker served each client in turn; a client that reached
		// an old worker as it drained is sent on (another 1012) before
		// anything is echoed there.
		if strings.Join(st.pids, " ") != strings.Join(workers, " ") {
			t.Errorf("client %d was served by workers %v; want %v", i, st.pids, workers)
		}
		if st.restarts < reloads {
			t.Errorf("client %d saw %d closes with 1012; want %d", i, st.restarts, reloads)
		}
		t.Logf("client %d: %d messages echoed, %d closes with 1012, %d messages sent again", i, st.next, st.restarts, st.resent)
	}
}

// wsClient is the client examples/websocket expects: it sends numbered
// messages, a few ahead of the echoes, checks that they come back in order,
// and when the server closes with 1012 (Service Restart) it reconnects and
// resends from the first one not echoed. Any other end of a connection,
// an abnormal closure or EOF, is a failure.
type wsClient struct {
	url string

	mu       sync.Mutex
	next     int      // the number of the next message to be echoed
	pids     []string // the workers that echoed, in order, without repeats
	restarts int      // connections closed with 1012
	resent   int      // messages sent again, as their connection closed before the echo
	err      error    // the first failure; the client stops on it
}

// window is how many messages a client sends ahead of their echoes, so that
// some are in flight when a close comes.
const window = 4

type wsClientState struct {
	next, restarts, resent int
	pids                   []string
	err                    error
}

func (c *wsClient) state() wsClientState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return wsClientState{c.next, c.restarts, c.resent, append([]string(nil), c.pids...), c.err}
}

// run connects again after every close with 1012, until stop or a failure.
func (c *wsClient) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if err := c.session(stop); err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
	}
}

// session serves one connection: nil once it was closed with 1012 or stop
// came.
func (c *wsClient) session(stop <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	conn, _, err := websocket.Dial(ctx, c.url, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.url, err)
	}
	defer conn.CloseNow()
	hello, err := readText(conn)
	if err != nil {
		return fmt.Errorf("hello from %s: %w", c.url, err)
	}
	pid, ok := strings.CutPrefix(hello, "hello ")
	if !ok {
		return fmt.Errorf("hello from %s: %q", c.url, hello)
	}

	c.mu.Lock()
	first := c.next
	c.mu.Unlock()
	credit := make(chan struct{}, window) // a token per message not yet echoed
	done := make(chan struct{})
	var writer sync.WaitGroup
	sent := first // messages sent on this connection: [first, sent)
	writer.Go(func() {
		for seq := first; ; seq++ {
			select {
			case credit <- struct{}{}:
			case <-done:
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			err := conn.Write(ctx, websocket.MessageText, []byte(strconv.Itoa(seq)))
			cancel()
			if err != nil {
				return // the reader sees why
			}
			sent = seq + 1
		}
	})
	stopWriter := sync.OnceFunc(func() { close(done); writer.Wait() })
	defer stopWriter()

	readErr := make(chan error, 1)
	go func() { readErr <- c.readEchoes(conn, credit) }()
	select {
	case err := <-readErr:
		if websocket.CloseStatus(err) == websocket.StatusServiceRestart {
			stopWriter()
			c.mu.Lock()
			c.restarts++
			c.resent += sent - c.next
			c.mu.Unlock()
			return nil
		}
		return fmt.Errorf("connection to worker %s: %w", pid, err)
	case <-stop:
		conn.Close(websocket.StatusNormalClosure, "")
		<-readErr
		return nil
	}
}

// readEchoes reads echoes until the connection ends, and returns why.
func (c *wsClient) readEchoes(conn *websocket.Conn, credit <-chan struct{}) error {
	for {
		text, err := readText(conn)
		if err != nil {
			return err
		}
		pid, seq, _ := strings.Cut(text, " ")
		c.mu.Lock()
		want := strconv.Itoa(c.next)
		if seq == want {
			c.next++
			if len(c.pids) == 0 || c.pids[len(c.pids)-1] != pid {
				c.pids = append(c.pids, pid)
			}
		}
		c.mu.Unlock()
		if seq != want {
			return fmt.Errorf("echo %q from worker %s; want message %s: lost or repeated", seq, pid, want)
		}
		<-credit
	}
}

// readText reads one text message, waiting at most wait for it.
func readText(conn *websocket.Conn) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	typ, b, err := conn.Read(ctx)
	if err != nil {
		return "", err
	}
	if typ != websocket.MessageText {
		return "", errors.New("binary message")
	}
	return string(b), nil
}

// Command websocket serves a websocket echo on a gozd http group, and says
// goodbye properly at a reload: when gozd.Draining fires, every connection
// gets a close frame with status 1012 (Service Restart), its handler
// returns, and the old worker exits at once instead of holding its
// websockets until drain_timeout cuts them. A client that sees 1012
// reconnects, and the master's listener hands it to the new worker.
//
// The protocol, in text messages, is what a client needs to resume with
// nothing lost or repeated:
//
//	server: hello PID                first message on every connection
//	client: TEXT                     any text, e.g. a sequence number
//	server: PID TEXT                 the echo, by the worker PID
//
// The server keeps no state between connections: a client resends, on its
// next connection, whatever the last one did not echo.
//
//	[ws]
//	mode   http
//	listen 127.0.0.1:8380
//
//	go run ./examples/websocket -f -c ws.conf    (then kill -HUP the master)
package main

import (
	"context"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/gozd/gozd"
)

// reloadReason goes with close code 1012; clients log it.
const reloadReason = "server restarting, reconnect"

// writeTimeout bounds a write to a client that stopped reading.
const writeTimeout = 10 * time.Second

func main() {
	done := gozd.Daemonize()
	if err := gozd.RegistHandler("ws", "websocket", http.HandlerFunc(echo)); err != nil {
		log.Fatal(err)
	}
	<-done
}

// echo serves one websocket until the client leaves or this worker drains.
func echo(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the client
	}
	defer c.CloseNow()
	pid := strconv.Itoa(os.Getpid())

	// One goroutine reads: Read's context must not be the drain signal,
	// as a cancelled Read closes the connection without a close frame.
	type message struct {
		text []byte
		err  error
	}
	received := make(chan message)
	handlerDone := make(chan struct{})
	defer close(handlerDone)
	go func() {
		for {
			_, text, err := c.Read(context.Background())
			select {
			case received <- message{text, err}:
			case <-handlerDone:
				return
			}
			if err != nil {
				return
			}
		}
	}()

	// The hello comes first even when this worker is draining already (the
	// client connected as the reload began): the client learns which
	// worker it reached, then gets 1012 and comes back to the new one.
	if err := write(c, "hello "+pid); err != nil {
		return
	}
	for {
		select {
		case <-gozd.Draining():
			// Close sends 1012 and waits (seconds at most) for the client's
			// close frame, which the reader goroutine takes in; messages
			// read meanwhile are dropped, and the client sends them again.
			c.Close(websocket.StatusServiceRestart, reloadReason)
			return
		case m := <-received:
			if m.err != nil {
				// The client closed, or the connection broke.
				return
			}
			if err := write(c, pid+" "+string(m.text)); err != nil {
				return
			}
		}
	}
}

// write sends one text message. Its context is not the request's: a write
// cut by a cancelled context closes the connection without a close frame.
func write(c *websocket.Conn, text string) error {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, []byte(text))
}

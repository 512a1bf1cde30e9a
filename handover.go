package gozd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The master passes a worker its orders in the environment variable
// envWorker (removed again by the worker, so the application's own children
// do not mistake themselves for workers) and these descriptors:
//
//	0      /dev/null
//	1, 2   a pipe the master copies into the gozd log
//	3      a unix stream socket to the master: the worker writes "ready" and
//	       "draining N"; the master writes "drain", "stop"; EOF on either
//	       side means the other is gone
//	4...   the listeners, one per group in config order
const (
	envWorker       = "GOZD_WORKER"
	envMaster       = "GOZD_MASTER" // set for a master started in the background: the fd of the pipe to the launcher
	workerControlFD = 3
)

// handover is what a worker learns from the master.
type handover struct {
	Generation int            `json:"gen"`
	Config     *Config        `json:"config"`
	Listeners  map[string]int `json:"fds"` // group name → descriptor
	Verbose    bool           `json:"verbose,omitempty"`
	Inbox      int            `json:"inbox,omitempty"`    // descriptor of the socket connections are handed over on (handoff.go)
	Reports    bool           `json:"reports,omitempty"`  // the master takes "build" and "stats" (report.go)
	Nice       *int           `json:"nice,omitempty"`     // the worker starts boosted and returns to this nice value once ready (priority.go)
	Timeline   bool           `json:"timeline,omitempty"` // the master takes "timeline" (timeline.go)
}

// readHandover returns the handover in the environment, or nil when this
// process is no worker.
func readHandover() (*handover, error) {
	v, ok := os.LookupEnv(envWorker)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(envWorker)
	h, err := decodeHandover([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("bad %s from the master: %w", envWorker, err)
	}
	return h, nil
}

// decodeHandover parses and checks a handover: a valid config, and a
// listener descriptor past the control socket for each of its groups and
// for nothing else.
func decodeHandover(b []byte) (*handover, error) {
	h, err := parseHandover(b) // json.Unmarshal's result, sooner (handover_decode.go)
	if err != nil {
		return nil, err
	}
	if h.Config == nil {
		return nil, errors.New("no config")
	}
	if err := h.Config.Validate(); err != nil {
		return nil, err
	}
	if len(h.Listeners) != len(h.Config.Groups) {
		return nil, fmt.Errorf("%d listeners for %d groups", len(h.Listeners), len(h.Config.Groups))
	}
	if h.Inbox != 0 && h.Inbox <= workerControlFD {
		return nil, fmt.Errorf("handoff descriptor %d is not past the control socket (%d)", h.Inbox, workerControlFD)
	}
	for i := range h.Config.Groups {
		name := h.Config.Groups[i].Name
		fd, ok := h.Listeners[name]
		if !ok {
			return nil, fmt.Errorf("no listener for group %q", name)
		}
		if fd <= workerControlFD {
			return nil, fmt.Errorf("group %q: listener descriptor %d is not past the control socket (%d)", name, fd, workerControlFD)
		}
	}
	return h, nil
}

// maxControlLine bounds one line of the control socket. A metrics reply or
// a worker's stats grow with the groups (some 250 bytes each): far past
// bufio.Scanner's 64 KiB default, which would read as the other side gone.
const maxControlLine = 16 << 20

// The messages of the control socket, one a line: a worker says ready and
// draining N (its open connections); the master says drain and stop.
const (
	msgReady    = "ready"
	msgDraining = "draining"
	msgDrain    = "drain"
	msgStop     = "stop"
)

// controlMsg is one decoded line of the control socket.
type controlMsg struct {
	kind        string // one of the msg constants
	connections int    // of "draining"
	payload     string // JSON object of the report messages (report.go)
}

// String is the line that carries m, without its newline.
func (m controlMsg) String() string {
	if m.kind == msgDraining {
		return fmt.Sprintf("%s %d", m.kind, m.connections)
	}
	if m.payload != "" {
		return m.kind + " " + m.payload
	}
	return m.kind
}

// parseControlMsg decodes one line of the control socket (without its
// newline). Each side acts only on the kinds meant for it.
func parseControlMsg(line string) (controlMsg, error) {
	kind, arg, hasArg := strings.Cut(line, " ")
	switch kind {
	case msgReady, msgDrain, msgStop:
		if hasArg {
			return controlMsg{}, fmt.Errorf("control message %q takes no argument", kind)
		}
		return controlMsg{kind: kind}, nil
	case msgDraining:
		n, err := strconv.Atoi(arg)
		if err != nil || !isDigits(arg) {
			return controlMsg{}, fmt.Errorf("control message %q: bad connection count %q", kind, arg)
		}
		return controlMsg{kind: kind, connections: n}, nil
	}
	if m, ok, err := parseReportMsg(kind, arg, hasArg); ok {
		return m, err
	}
	return controlMsg{}, fmt.Errorf("unknown control message %.40q", line)
}

// workerEnv is the environment of a new worker: the master's own, without the
// variables meant for the master alone (systemd's socket activation and
// notification, gozd's own), plus the handover.
func workerEnv(h *handover) ([]string, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	env := []string{envWorker + "=" + string(b)}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case envWorker, envMaster, "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET":
			continue
		}
		env = append(env, kv)
	}
	return env, nil
}

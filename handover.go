package gozd

import (
	"encoding/json"
	"fmt"
	"os"
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
	Inbox      int            `json:"inbox,omitempty"` // descriptor of the socket connections are handed over on (handoff.go)
}

// readHandover returns the handover in the environment, or nil when this
// process is no worker.
func readHandover() (*handover, error) {
	v, ok := os.LookupEnv(envWorker)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(envWorker)
	var h handover
	if err := json.Unmarshal([]byte(v), &h); err != nil {
		return nil, fmt.Errorf("gozd: bad %s from the master: %w", envWorker, err)
	}
	if h.Config == nil {
		return nil, fmt.Errorf("gozd: %s from the master has no config", envWorker)
	}
	return &h, nil
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

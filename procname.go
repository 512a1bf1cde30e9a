package gozd

import (
	"fmt"
	"os"
	"path/filepath"
)

// Process names, so that ps and top tell the master, the serving worker
// and a draining one apart ("app: master", "app: worker 7", "app: worker 6
// draining"), as nginx's do.
//
// This sets the name the kernel keeps for the process (comm: ps -o comm,
// top, /proc/PID/comm, what pkill matches), which is at most 15 bytes: the
// kernel cuts longer ones. Writing /proc/self/comm sets it for the main
// thread, whose name is the process's, which prctl(PR_SET_NAME) cannot do
// from Go: it names whichever thread the goroutine runs on.
//
// The command line (ps -f, ps aux) is left as it is. Rewriting it in place
// is not safe in Go: os.Args and the values the flag package parsed from
// it share argv's memory, which would change under them; and pointing the
// kernel at a new command line (PR_SET_MM) needs CAP_SYS_RESOURCE, which
// workers that dropped privileges do not have.

// setProcName names this process "<program>: <role>".
func setProcName(role string) {
	name := filepath.Base(os.Args[0]) + ": " + role
	// Errors are no reason to stop: the name is a convenience.
	os.WriteFile("/proc/self/comm", []byte(name), 0)
}

// nameWorker names a worker of generation gen now and again once it
// drains.
func nameWorker(d *Daemon, gen int) {
	setProcName(fmt.Sprintf("worker %d", gen))
	go func() {
		<-d.Draining()
		setProcName(fmt.Sprintf("worker %d draining", gen))
	}()
}

package gozd

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Bounds of the master's output.
const (
	logBufferSize  = 1 << 20                  // bytes of log lines waiting for a slow log before lines are dropped
	logFlushWait   = 2 * time.Second          // how long an exiting master waits for its last lines to be written
	startFlushWait = 100 * time.Millisecond   // how long a started master waits for its lines before saying it started
	tailSize       = 4 << 10                  // bytes of a failed worker's output quoted in the log
	outputLineMax  = 64 << 10                 // longer lines of a worker are passed on in pieces this long
	dropReportMsg  = "log lines were dropped" // the message that says how many

	// lineBufferStart is the buffer a worker's output lines and control
	// messages are first read into, and a worker's orders from the master;
	// it grows for a longer line, up to the limit. The master keeps one of
	// each per worker: at 64 KiB they were half of its live heap during a
	// reload. In a worker, 64 KiB were a tenth of its live heap, which
	// with the runtime's 4 MiB floor of a heap goal made garbage
	// collection run more often.
	lineBufferStart = 4 << 10
)

// logWriter is the master's stderr (the log file in the background, the
// terminal or journald in the foreground) made non-blocking: writes queue
// whole lines in a bounded buffer that one goroutine writes out. When the
// output stalls — a full pipe nobody reads, a hung journald — the master's
// loop and the workers whose output it copies carry on, new lines are dropped
// once logBufferSize bytes wait, and their number is logged once the output
// takes lines again.
type logWriter struct {
	dst  io.Writer
	drop *slog.Logger // says how many lines were dropped; writes to dst, from the writer goroutine only

	mu      sync.Mutex
	queue   [][]byte
	size    int  // bytes in queue
	dropped int  // lines dropped since the last report
	busy    bool // the writer goroutine holds lines it took from queue
	wake    chan struct{}
	idle    *sync.Cond // signalled when queue is empty and nothing is being written
}

// newLogWriter starts the goroutine that writes to dst. attrs label the
// message about dropped lines as the master's own log lines are labelled.
func newLogWriter(dst io.Writer, attrs ...any) *logWriter {
	w := &logWriter{dst: dst, wake: make(chan struct{}, 1)}
	w.idle = sync.NewCond(&w.mu)
	w.drop = slog.New(slog.NewTextHandler(dst, nil)).With(attrs...)
	go w.run()
	return w
}

// Write queues p, which should be one or more whole lines, and never
// blocks on the output.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.size+len(p) > logBufferSize {
		w.dropped++
		w.mu.Unlock()
		return len(p), nil
	}
	w.queue = append(w.queue, append([]byte(nil), p...))
	w.size += len(p)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *logWriter) run() {
	var buf []byte
	for range w.wake {
		for {
			w.mu.Lock()
			lines, dropped := w.queue, w.dropped
			w.queue, w.size, w.dropped = nil, 0, 0
			w.busy = len(lines) > 0 || dropped > 0
			if !w.busy {
				w.idle.Broadcast()
				w.mu.Unlock()
				break
			}
			w.mu.Unlock()
			// Every line queued came before every line dropped: lines
			// are dropped only while the queue is full.
			buf = buf[:0]
			for _, l := range lines {
				buf = append(buf, l...)
			}
			if len(buf) > 0 {
				// A write error (nobody reads stderr any more) loses
				// the lines; there is nowhere else to say so.
				w.dst.Write(buf)
			}
			if dropped > 0 {
				w.drop.Warn(dropReportMsg, "lines", dropped, "why", "the log output did not keep up")
			}
			if cap(buf) > logBufferSize {
				buf = nil
			}
		}
	}
}

// flush waits up to wait for every queued line to be written, so that an
// exiting master's last lines are not lost, unless the output is stalled.
func (w *logWriter) flush(wait time.Duration) {
	done := make(chan struct{})
	go func() {
		w.mu.Lock()
		for len(w.queue) > 0 || w.busy {
			w.idle.Wait()
		}
		w.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(wait):
	}
}

// copyOutput copies a worker's stdout and stderr into the master's log line
// by line, so that lines of several processes do not interleave, and keeps
// the tail for the log message if the worker fails. It never waits for the
// log: the worker must not stall because the master's output does.
func (m *master) copyOutput(w *worker, r io.ReadCloser) {
	defer close(w.outDone)
	defer r.Close()
	scanOutput(r, func(line []byte) {
		w.tail.Write(line)
		m.out.Write(line)
	})
}

// scanOutput calls line with each line of r, its newline kept, until r
// ends: a line longer than outputLineMax comes in pieces that long, and
// what r ends with after its last newline comes last. line must not keep
// the slice.
func scanOutput(r io.Reader, line func([]byte)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, lineBufferStart), outputLineMax)
	sc.Split(outputLines)
	for sc.Scan() {
		line(sc.Bytes())
	}
}

// outputLines is scanOutput's bufio.SplitFunc.
func outputLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 && i < outputLineMax {
		return i + 1, data[:i+1], nil
	}
	if len(data) >= outputLineMax {
		return outputLineMax, data[:outputLineMax], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimRight(string(t.buf), "\n")
}

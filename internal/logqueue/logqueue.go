// Package logqueue takes log lines off their writers' path: a Writer
// hands each line to one goroutine, which writes the lines queued
// meanwhile in one call. A replica that starts thousands of runs at one
// instant then pays a copy per "run started" line, not a write to stderr
// behind every other run's (measured in bench/README.md).
package logqueue

import (
	"fmt"
	"io"
	"sync"
)

// Defaults of New.
const (
	// DefaultLines is how many lines may wait; a Write beyond them waits
	// for room, so that no line is dropped.
	DefaultLines = 4096
	// DefaultBatch is the most bytes written in one call.
	DefaultBatch = 64 << 10
)

// Writer queues the lines written to it for its goroutine, which writes
// them to the underlying writer in order. A Write never drops a line: it
// waits while DefaultLines are queued. Lines queued when the process dies
// without Close are lost (one instant's worth, as the goroutine writes as
// soon as a line comes). After Close, Write writes straight through.
type Writer struct {
	w     io.Writer
	mu    sync.RWMutex // Write holds it to read, Close to write
	shut  bool
	lines chan []byte
	done  chan struct{}
	errMu sync.Mutex
	err   error // the last failed write, not yet reported
}

// New starts w's goroutine; Close stops it.
func New(w io.Writer) *Writer {
	q := &Writer{w: w, lines: make(chan []byte, DefaultLines), done: make(chan struct{})}
	go q.loop()
	return q
}

// Dest is the writer that w writes to.
func (q *Writer) Dest() io.Writer { return q.w }

// Write queues a copy of p (a caller may reuse p at once, as zerolog
// does) and returns len(p); it waits while the queue is full. It returns
// the error of a failed earlier write, once, wrapped with ErrWrite.
func (q *Writer) Write(p []byte) (int, error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.shut {
		return q.w.Write(p)
	}
	q.lines <- append([]byte(nil), p...)
	q.errMu.Lock()
	err := q.err
	q.err = nil
	q.errMu.Unlock()
	if err != nil {
		return len(p), fmt.Errorf("%w: %w", ErrWrite, err)
	}
	return len(p), nil
}

// Close writes the queued lines, stops the goroutine and returns the
// error of a failed write not yet reported. Later Writes write straight
// through; Close again does nothing.
func (q *Writer) Close() error {
	q.mu.Lock()
	if !q.shut {
		q.shut = true
		close(q.lines)
	}
	q.mu.Unlock()
	<-q.done
	q.errMu.Lock()
	defer q.errMu.Unlock()
	err := q.err
	q.err = nil
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	return nil
}

// loop writes each line with those queued behind it, up to DefaultBatch
// bytes a call, until Close closes the queue.
func (q *Writer) loop() {
	defer close(q.done)
	buf := make([]byte, 0, DefaultBatch)
	for line := range q.lines {
		buf = append(buf[:0], line...)
		more := true
		for more && len(buf) < DefaultBatch {
			select {
			case next, ok := <-q.lines:
				if !ok {
					more = false
					break
				}
				buf = append(buf, next...)
			default:
				more = false
			}
		}
		if _, err := q.w.Write(buf); err != nil {
			q.errMu.Lock()
			q.err = err
			q.errMu.Unlock()
		}
	}
}

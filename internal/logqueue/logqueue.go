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

// The queue's limits.
const (
	// QueueLines is how many lines may wait; a Write beyond them waits
	// for room, so that no line is dropped.
	QueueLines = 4096
	// BatchBytes is how many bytes of queued lines one write gathers:
	// it stops at the first line that reaches it (a longer line is
	// written whole).
	BatchBytes = 64 << 10
)

// Writer queues the lines written to it for its goroutine, which writes
// them to its destination in order. A Write never drops a line: it waits
// while QueueLines are queued, so a destination that blocks for good
// blocks the writers too (as writing to it directly would). Lines queued
// when the process dies without Close are lost (one instant's worth, as
// the goroutine writes as soon as a line comes). After Close, Write
// writes straight through, one at a time. The destination is thus only
// ever written by one goroutine at a time.
type Writer struct {
	dest  io.Writer
	mu    sync.RWMutex // Write holds it to read, Close to write
	shut  bool
	lines chan []byte
	done  chan struct{}
	errMu sync.Mutex
	err   error // the last failed write, not yet reported
}

// New starts the goroutine that writes to dest; Close stops it.
func New(dest io.Writer) *Writer {
	q := &Writer{dest: dest, lines: make(chan []byte, QueueLines), done: make(chan struct{})}
	go q.loop()
	return q
}

// Dest is the writer that q writes to.
func (q *Writer) Dest() io.Writer { return q.dest }

// Write queues a copy of p (a caller may reuse p at once, as zerolog
// does) and returns len(p); it waits while the queue is full. It returns
// the error of a failed earlier write, once, wrapped with ErrWrite.
func (q *Writer) Write(p []byte) (int, error) {
	q.mu.RLock()
	if !q.shut {
		err := q.takeErr() // before p is queued: its own write comes later
		q.lines <- append([]byte(nil), p...)
		q.mu.RUnlock()
		return len(p), err
	}
	q.mu.RUnlock()
	// Closed: one Write at a time, as the goroutine wrote before.
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dest.Write(p)
}

// Close writes the queued lines, stops the goroutine and returns the
// error of a failed write not yet reported; it leaves the destination
// open. Writes that come meanwhile wait, and then, like every later
// Write, write straight through. Close again does nothing.
func (q *Writer) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.shut {
		q.shut = true
		close(q.lines)
	}
	<-q.done // the goroutine takes no lock: it ends once the queue is written
	return q.takeErr()
}

// takeErr returns the failed write's error not yet reported, wrapped
// with ErrWrite, and forgets it.
func (q *Writer) takeErr() error {
	q.errMu.Lock()
	err := q.err
	q.err = nil
	q.errMu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	return nil
}

// loop writes each line with those queued behind it, up to BatchBytes a
// call, until Close closes the queue.
func (q *Writer) loop() {
	defer close(q.done)
	buf := make([]byte, 0, BatchBytes)
	for line := range q.lines {
		buf = append(buf[:0], line...)
	gather:
		for len(buf) < BatchBytes {
			select {
			case next, ok := <-q.lines:
				if !ok {
					break gather // closed: the range ends after this write
				}
				buf = append(buf, next...)
			default:
				break gather // nothing more queued
			}
		}
		if _, err := q.dest.Write(buf); err != nil {
			q.errMu.Lock()
			q.err = err
			q.errMu.Unlock()
		}
	}
}

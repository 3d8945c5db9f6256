package logqueue

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sink is a destination: it keeps what it is given, counts its calls,
// and can hold them (gate) or fail them (fail).
type sink struct {
	mu    sync.Mutex
	b     bytes.Buffer
	calls int
	gate  chan struct{} // when set, each call waits for it to close
	fail  error         // when set, each call fails with it
}

func (s *sink) Write(p []byte) (int, error) {
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	s.calls++
	var err error
	if s.fail != nil {
		err = s.fail
	} else {
		s.b.Write(p)
	}
	s.mu.Unlock()
	return len(p), err
}

func (s *sink) got() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String(), s.calls
}

// waitFor polls cond every millisecond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 5000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s: still not so after 5s", what)
}

// TestLinesInOrder: lines written from many goroutines at once all come
// out, each once, every writer's in its order, and the reused buffer of a
// caller does not show through.
func TestLinesInOrder(t *testing.T) {
	s := &sink{}
	q := New(s)
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			buf := make([]byte, 0, 64)
			for i := range lines {
				buf = fmt.Appendf(buf[:0], "w%d %d\n", w, i)
				if _, err := q.Write(buf); err != nil {
					t.Errorf("Write: %v", err)
				}
				copy(buf, "XXXXXXXX") // reused at once, as zerolog does
			}
		})
	}
	wg.Wait()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := s.got()
	checkOrder(t, out, writers, lines)
}

// checkOrder checks that out holds the lines "w<writer> <i>" of every
// writer, each once and in order.
func checkOrder(t *testing.T, out string, writers, lines int) {
	t.Helper()
	next := make([]int, writers)
	for line := range strings.Lines(out) {
		var w, i int
		if _, err := fmt.Sscanf(line, "w%d %d\n", &w, &i); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: got line %d, want %d", w, i, next[w])
		}
		next[w]++
	}
	for w, n := range next {
		if n != lines {
			t.Errorf("writer %d: got %d lines, want %d", w, n, lines)
		}
	}
}

// TestNeverDrops: while the destination is held, lines queue up to
// QueueLines and the next Write waits for room; once released, every
// line is written.
func TestNeverDrops(t *testing.T) {
	s := &sink{gate: make(chan struct{})}
	q := New(s)
	// 100-byte lines: the held call carries at most BatchBytes of them,
	// and twice QueueLines fill the queue behind it.
	const size, total = 100, 2 * QueueLines
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			fmt.Fprintf(q, "%0*d\n", size-1, i)
		}
	}()
	waitFor(t, "queue full", func() bool { return len(q.lines) == QueueLines })
	close(s.gate)
	<-done
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if out, _ := s.got(); strings.Count(out, "\n") != total {
		t.Errorf("lines written: got %d, want %d", strings.Count(out, "\n"), total)
	}
}

// TestBatches: the lines queued behind a held write go out in calls of
// BatchBytes, not one call a line.
func TestBatches(t *testing.T) {
	s := &sink{gate: make(chan struct{})}
	q := New(s)
	const size, backlog = 100, 1000 // within QueueLines: no Write waits
	fmt.Fprintf(q, "%0*d\n", size-1, 0)
	waitFor(t, "first line taken", func() bool { return len(q.lines) == 0 })
	for i := range backlog {
		fmt.Fprintf(q, "%0*d\n", size-1, i+1)
	}
	close(s.gate)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	out, calls := s.got()
	if got := strings.Count(out, "\n"); got != 1+backlog {
		t.Errorf("lines written: got %d, want %d", got, 1+backlog)
	}
	// The held call took the first line (and any queued with it); the
	// backlog, all queued before the release, fills whole batches.
	if want := 1 + (backlog*size+BatchBytes-1)/BatchBytes; calls > want {
		t.Errorf("write calls: got %d, want at most %d (batched)", calls, want)
	}
}

// TestWriteErrorReported: a write that fails after its Write returned is
// reported by the next Write, once, or else by Close.
func TestWriteErrorReported(t *testing.T) {
	boom := errors.New("disk full")
	failed := func(q *Writer) func() bool {
		return func() bool {
			q.errMu.Lock()
			defer q.errMu.Unlock()
			return q.err != nil
		}
	}
	t.Run("by the next Write", func(t *testing.T) {
		s := &sink{fail: boom}
		q := New(s)
		if _, err := q.Write([]byte("a\n")); err != nil {
			t.Fatalf("first Write: got %v, want nil (the write happens after)", err)
		}
		waitFor(t, "write failed", failed(q))
		s.mu.Lock()
		s.fail = nil
		s.mu.Unlock()
		if _, err := q.Write([]byte("b\n")); !errors.Is(err, ErrWrite) || !errors.Is(err, boom) {
			t.Errorf("Write after a failed write: got %v, want ErrWrite wrapping %v", err, boom)
		}
		if _, err := q.Write([]byte("c\n")); err != nil {
			t.Errorf("Write once the failure was reported: got %v, want nil", err)
		}
		if err := q.Close(); err != nil {
			t.Errorf("Close: got %v, want nil (reported already)", err)
		}
		if out, _ := s.got(); out != "b\nc\n" {
			t.Errorf("written: got %q, want the lines after the failure", out)
		}
	})
	t.Run("by Close", func(t *testing.T) {
		s := &sink{fail: boom}
		q := New(s)
		if _, err := q.Write([]byte("a\n")); err != nil {
			t.Fatal(err)
		}
		if err := q.Close(); !errors.Is(err, ErrWrite) || !errors.Is(err, boom) {
			t.Errorf("Close: got %v, want ErrWrite wrapping %v", err, boom)
		}
		if err := q.Close(); err != nil {
			t.Errorf("Close again: got %v, want nil", err)
		}
	})
}

// TestCloseWhileWriting: Writes that meet Close wait for the queue to be
// written, then go straight through: one writer at a time reaches the
// destination (a plain bytes.Buffer, which -race checks), and each
// writer's lines stay in order.
func TestCloseWhileWriting(t *testing.T) {
	var b bytes.Buffer
	q := New(&b)
	const writers, lines = 4, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(q, "w%d %d\n", w, i)
			}
		})
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	checkOrder(t, b.String(), writers, lines)
}

// TestAfterClose: Close writes what is queued; later lines go straight
// through.
func TestAfterClose(t *testing.T) {
	s := &sink{}
	q := New(s)
	fmt.Fprint(q, "before\n")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if out, _ := s.got(); out != "before\n" {
		t.Fatalf("after Close: got %q, want the queued line", out)
	}
	fmt.Fprint(q, "after\n")
	if out, _ := s.got(); out != "before\nafter\n" {
		t.Errorf("Write after Close: got %q, want it written at once", out)
	}
}

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

// sink is an underlying writer: it keeps what it is given, counts its
// calls, and can hold them (gate) or fail them (fail).
type sink struct {
	mu    sync.Mutex
	b     bytes.Buffer
	calls int
	gate  chan struct{} // when set, each call waits for it to close
	fail  error         // when set, each call fails with it
	wrote chan struct{} // when set, signalled after each call
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
	if s.wrote != nil {
		s.wrote <- struct{}{}
	}
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
	next := make([]int, writers)
	n := 0
	for line := range strings.Lines(out) {
		var w, i int
		if _, err := fmt.Sscanf(line, "w%d %d\n", &w, &i); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: got line %d, want %d", w, i, next[w])
		}
		next[w]++
		n++
	}
	if n != writers*lines {
		t.Errorf("lines: got %d, want %d", n, writers*lines)
	}
}

// TestBatchesAndNeverDrops: while the underlying writer is held, lines
// queue up to DefaultLines and the next Write waits for room, dropping
// nothing; once released, the queued lines go out in few calls.
func TestBatchesAndNeverDrops(t *testing.T) {
	s := &sink{gate: make(chan struct{})}
	q := New(s)
	// 100-byte lines: the held call carries at most DefaultBatch bytes
	// of them, and twice DefaultLines fill the queue behind it.
	const size, total = 100, 2 * DefaultLines
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			fmt.Fprintf(q, "%0*d\n", size-1, i)
		}
	}()
	waitFor(t, "queue full", func() bool { return len(q.lines) == DefaultLines })
	select {
	case <-done:
		t.Fatal("every Write returned with the queue full and the writer held: lines were dropped")
	default:
	}
	close(s.gate)
	<-done
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	out, calls := s.got()
	if got := strings.Count(out, "\n"); got != total {
		t.Errorf("lines written: got %d, want %d", got, total)
	}
	// The queue behind the held call went out in calls of up to
	// DefaultBatch bytes; the lines written after the release, as fast as
	// they come. One call a line would be no batching.
	if want := total / 10; calls > want {
		t.Errorf("write calls for %d lines: got %d, want at most %d (batched)", total, calls, want)
	}
}

// TestWriteErrorReported: a write that fails after its Write returned is
// reported by the next Write, once, or else by Close.
func TestWriteErrorReported(t *testing.T) {
	boom := errors.New("disk full")
	t.Run("by the next Write", func(t *testing.T) {
		s := &sink{fail: boom, wrote: make(chan struct{}, 8)}
		q := New(s)
		if _, err := q.Write([]byte("a\n")); err != nil {
			t.Fatalf("first Write: got %v, want nil (the write happens after)", err)
		}
		<-s.wrote
		if _, err := q.Write([]byte("b\n")); !errors.Is(err, ErrWrite) || !errors.Is(err, boom) {
			t.Errorf("Write after a failed write: got %v, want ErrWrite wrapping %v", err, boom)
		}
		<-s.wrote
		s.mu.Lock()
		s.fail = nil
		s.mu.Unlock()
		if err := q.Close(); !errors.Is(err, boom) {
			t.Errorf("Close with the second line's write failed: got %v, want %v", err, boom)
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

package jobs

import "sync"

// Tail keeps the last bytes written to it, up to its cap: the tail of a
// command's output or of an HTTP response, kept in the run's record. Safe
// for concurrent writers (stdout and stderr).
type Tail struct {
	mu   sync.Mutex
	cap  int
	buf  []byte
	lost int64 // bytes dropped from the front
}

// NewTail returns a Tail that keeps the last capBytes bytes (none if
// capBytes <= 0).
func NewTail(capBytes int) *Tail { return &Tail{cap: max(capBytes, 0)} }

// Write keeps the last cap bytes of everything written; it never fails.
func (t *Tail) Write(p []byte) (int, error) {
	if t == nil {
		return len(p), nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if n >= t.cap {
		t.lost += int64(len(t.buf) + n - t.cap)
		t.buf = append(t.buf[:0], p[n-t.cap:]...)
		return n, nil
	}
	if over := len(t.buf) + n - t.cap; over > 0 {
		t.lost += int64(over)
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String is the kept tail, prefixed with "…" when earlier bytes were
// dropped.
func (t *Tail) String() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lost > 0 {
		return "…" + string(t.buf)
	}
	return string(t.buf)
}

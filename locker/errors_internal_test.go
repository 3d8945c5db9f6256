package locker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// pastDeadline is a context whose deadline, at, has passed while its
// timer has not fired yet: Err is still nil (as for a moment after a
// socket deadline set from it fires). The deadline is fixed, as a real
// context's is: one read from the clock at each call could fall after the
// instant withCtx compares it with.
type pastDeadline struct {
	context.Context
	at time.Time
}

func (c pastDeadline) Deadline() (time.Time, bool) { return c.at, true }

// TestWithCtx: a call's error keeps its context's error when the context
// ended it, also when the deadline has passed before the context's timer
// fired; not when the context lives, and not twice.
func TestWithCtx(t *testing.T) {
	io := errors.New("read tcp: i/o timeout")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want error // nil: err alone
	}{
		{"live context", context.Background(), io, nil},
		{"cancelled", cancelled, io, context.Canceled},
		{"deadline passed, timer not fired", pastDeadline{context.Background(), time.Now().Add(-time.Second)}, io, context.DeadlineExceeded},
		{"already wrapped", cancelled, errors.Join(io, context.Canceled), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := withCtx(tc.ctx, tc.err)
			if !errors.Is(got, tc.err) {
				t.Errorf("got %v, want it to wrap %v", got, tc.err)
			}
			if tc.want == nil {
				if got != tc.err {
					t.Errorf("got %v, want %v unchanged", got, tc.err)
				}
				return
			}
			if !errors.Is(got, tc.want) {
				t.Errorf("got %v, want it to wrap %v", got, tc.want)
			}
		})
	}
}

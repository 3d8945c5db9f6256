package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/scheduler/store"
)

// TestRightsWatch drives the watch on a fake clock with a check whose
// answers the test gives: only the ACL's refusal asks for a check; a check
// that finds refusals is logged and repeated every rightsRecheck until it
// passes, which is logged once; refusals seen after a check wait for
// rightsRecheck to pass since it. The refusal with real Redis is
// TestACLChangedWhileRunning (cmd/redcron).
func TestRightsWatch(t *testing.T) {
	fc := newFakeClock(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC))
	var logs lockedBuffer
	s := &Scheduler{opts: Options{Clock: fc}, log: zerolog.New(&logs)}
	w := newRightsWatch(s)
	refusal := fmt.Errorf("locker: obtain %q: %w", "rc:{a}:lease",
		errors.New("ERR The user executing the script can't run this command or subcommand script: 1f0e, on @user_script:52."))

	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"no error", nil, 0},
		{"an I/O error", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), 0},
		{"a refusal from a script", refusal, 1},
		{"a top-level refusal", errors.New("NOPERM this user has no permissions to run the 'evalsha' command"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			select {
			case <-w.kick: // each case starts with no check asked for
			default:
			}
			w.seen(tc.err)
			if got := len(w.kick); got != tc.want {
				t.Errorf("checks asked for: got %d, want %d", got, tc.want)
			}
		})
	}

	checks := make(chan struct{})
	answers := make(chan error)
	check := func(ctx context.Context) error {
		select {
		case checks <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case err := <-answers:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	stop := w.start(context.Background(), check)
	t.Cleanup(stop)
	// answer waits for the next check and gives it err.
	answer := func(err error) {
		t.Helper()
		select {
		case <-checks:
		case <-time.After(5 * time.Second):
			t.Fatalf("no check within 5s, want one (answering %v)", err)
		}
		answers <- err
	}
	lines := func(msg string) int { return strings.Count(logs.String(), msg) }
	const refusedMsg, againMsg = "may no longer run what the scripts call", "may run what the scripts call again"
	refusedErr := fmt.Errorf("%w: the user may not run setbit", store.ErrACL)

	// The refusal seen above: checked at once; the check finds setbit refused.
	answer(refusedErr)
	waitTimers(t, fc, 1)
	if got := lines(refusedMsg); got != 1 || !strings.Contains(logs.String(), "setbit") {
		t.Fatalf("after a check that found refusals: got %d error lines, want 1 naming setbit; log:\n%s", got, logs.String())
	}
	// Checked again every rightsRecheck until the user may run everything.
	fc.Advance(rightsRecheck)
	answer(refusedErr)
	waitTimers(t, fc, 1)
	if got := lines(refusedMsg); got != 2 {
		t.Errorf("error lines after two refused checks: got %d, want 2", got)
	}
	fc.Advance(rightsRecheck)
	answer(nil)
	waitFor(t, 5*time.Second, func() bool { return lines(againMsg) == 1 })

	// A refusal seen now waits until rightsRecheck after the last check.
	w.seen(refusal)
	waitTimers(t, fc, 1)
	fc.Advance(rightsRecheck - time.Millisecond)
	waitTimers(t, fc, 1) // still armed: no check yet
	select {
	case <-checks:
		t.Fatalf("checked %v after the last check, want %v", rightsRecheck-time.Millisecond, rightsRecheck)
	default:
	}
	fc.Advance(time.Millisecond)
	answer(errors.New("store: checking the redis user's rights: i/o timeout"))
	waitFor(t, 5*time.Second, func() bool { return lines("could not be checked") == 1 })

	// A refusal that the check does not find is worth a warning.
	w.seen(refusal)
	waitTimers(t, fc, 1)
	fc.Advance(rightsRecheck)
	answer(nil)
	waitFor(t, 5*time.Second, func() bool { return lines("yet its user may run every command") == 1 })
	if got := lines(againMsg); got != 1 {
		t.Errorf("lines saying the rights are back: got %d, want 1 (the rights were not refused since)", got)
	}
}

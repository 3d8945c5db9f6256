package locker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
)

// waitMark polls key on c until it equals want (the undo is asynchronous on
// a single node), failing after 3s.
func waitMark(t *testing.T, c redis.UniversalClient, key, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, err := c.Get(context.Background(), key).Result()
		if got == want {
			if ttl := c.PTTL(context.Background(), key).Val(); ttl <= 0 {
				t.Fatalf("mark %s: got TTL %v, want the mark's own TTL kept", key, ttl)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mark %s: got %q (%v), want %q", key, got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTooLateKeepsSlotClaimed: a claim that Redis ran but that came back
// after its local deadline (here: a 1ms TTL is always past its deadline once
// the drift is taken off) must not free the slot. Other replicas may already
// have seen its running mark and given the slot up; deleting the mark would
// lose the slot silently. The undo leaves SkippedAborted instead.
func TestTooLateKeepsSlotClaimed(t *testing.T) {
	ctx := context.Background()
	claim := locker.Claim{Key: "late:{j}:lease:1", FenceKey: "late:{j}:fence", TTL: time.Millisecond,
		MarkKey: "late:{j}:slot:1", MarkTTL: 30 * time.Second}

	t.Run("single node", func(t *testing.T) {
		s := redistest.Start(t, redistest.Options{})
		c := s.Client(t)
		l := locker.New(c, locker.Options{})
		_, err := l.Obtain(ctx, claim)
		if !errors.Is(err, locker.ErrTooLate) {
			t.Fatalf("Obtain: got %v, want ErrTooLate", err)
		}
		waitMark(t, c, claim.MarkKey, locker.SkippedAborted)
		again := claim
		again.TTL = time.Second
		_, err = l.Obtain(ctx, again)
		var ne *locker.NotObtainedError
		if !errors.Is(err, locker.ErrSlotClaimed) || !errors.As(err, &ne) || ne.Record != locker.SkippedAborted {
			t.Fatalf("second claim of the slot: got %v, want ErrSlotClaimed with record %q", err, locker.SkippedAborted)
		}
	})

	t.Run("quorum of 3", func(t *testing.T) {
		_, clients := cluster(t, 3, redistest.Options{})
		q := newQuorum(t, clients, locker.Options{})
		_, err := q.Obtain(ctx, claim)
		if !errors.Is(err, locker.ErrTooLate) || !errors.Is(err, locker.ErrNoQuorum) {
			t.Fatalf("Obtain: got %v, want ErrNoQuorum and ErrTooLate", err)
		}
		for i, c := range clients {
			if got := c.Get(ctx, claim.MarkKey).Val(); got != locker.SkippedAborted {
				t.Fatalf("node %d mark: got %q, want %q", i, got, locker.SkippedAborted)
			}
		}
	})
}

// TestQuorumSplitVote: running marks of two other claimants, one node each,
// do not make the slot taken (neither won; both undo), so the claim fails
// with the retryable ErrNoQuorum and deletes its own mark so a retry can
// win. One claimant's marks on a majority do make it taken.
func TestQuorumSplitVote(t *testing.T) {
	ctx := context.Background()
	claim := locker.Claim{Key: "split:{j}:lease:1", FenceKey: "split:{j}:fence", TTL: 5 * time.Second,
		MarkKey: "split:{j}:slot:1", MarkTTL: 30 * time.Second, Unwatched: true}
	tests := []struct {
		name        string
		marks       [3]string // pre-existing mark per node ("" none)
		wantClaimed bool
	}{
		{"split between two others", [3]string{"running:aaa:1", "running:bbb:1", ""}, false},
		{"one other holds a majority", [3]string{"running:aaa:1", "running:aaa:1", ""}, true},
		{"final records on a majority", [3]string{`{"outcome":"ok"}`, `{"outcome":"ok"}`, ""}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, clients := cluster(t, 3, redistest.Options{})
			for i, m := range tc.marks {
				if m != "" {
					if err := clients[i].Set(ctx, claim.MarkKey, m, time.Minute).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}
			_, err := newQuorum(t, clients, locker.Options{}).Obtain(ctx, claim)
			if got := errors.Is(err, locker.ErrSlotClaimed); got != tc.wantClaimed {
				t.Fatalf("Obtain: got %v; ErrSlotClaimed %v, want %v", err, got, tc.wantClaimed)
			}
			if !tc.wantClaimed && !errors.Is(err, locker.ErrNoQuorum) {
				t.Fatalf("Obtain: got %v, want ErrNoQuorum (retryable)", err)
			}
			if n := clients[2].Exists(ctx, claim.MarkKey).Val(); n != 0 {
				t.Fatalf("node 2 after the failed claim: got its mark kept, want it deleted (the claim lost the vote)")
			}
		})
	}
}

// TestRetriedClaimIsIdempotent: the same claim (same token) run twice, as a
// client-side retry after a lost reply would, succeeds both times with the
// same fence instead of reporting its own mark as "slot claimed".
func TestRetriedClaimIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t, redistest.Options{})
	c := s.Client(t)
	script := redis.NewScript(locker.ObtainLuaForTest)
	keys := []string{"idem:{j}:lease:1", "idem:{j}:slot:1", "idem:{j}:fence", "idem:{j}:lease:1"}
	args := []any{"0123456789abcdef0123456789abcdef", 5000, "1", 60000, "", "0", "0"}
	first, err := script.Run(ctx, c, keys, args...).Result()
	if err != nil {
		t.Fatal(err)
	}
	again, err := script.Run(ctx, c, keys, args...).Result()
	if err != nil {
		t.Fatal(err)
	}
	if first != again || first != int64(1) {
		t.Fatalf("claim then its retry: got fences %v and %v, want 1 and 1", first, again)
	}
	other := append([]any{"ffffffffffffffffffffffffffffffff"}, args[1:]...)
	v, err := script.Run(ctx, c, keys, other...).Result()
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := v.([]any); !ok || a[0] != int64(2) {
		t.Fatalf("another token's claim of the slot: got %v, want {2, ...} (slot claimed)", v)
	}
}

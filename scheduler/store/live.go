package store

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/locker"
)

var (
	//go:embed beat.lua
	beatLua string
	// beatScript is a replica's liveness beat (see Beat).
	beatScript = redis.NewScript(beatLua)
)

// liveKeys are the liveness beats of work sharing: a sorted set of replica
// ids scored by their last beat (server ms) and a hash of their states.
// Both share the {live} hash tag, so that one script reaches both on
// Cluster.
func (s *Store) liveKeys() []string {
	return []string{s.prefix + ":{live}:beats", s.prefix + ":{live}:states"}
}

// LiveReplica is one replica's last liveness beat.
type LiveReplica struct {
	// Beat is when it last beat, on the server's clock.
	Beat time.Time
	// State is what it said of itself (opaque to the store).
	State string
}

// Live is the answer to a beat: the server's time and every replica that
// beat within the forget period.
type Live struct {
	// Now is the server's time when it answered.
	Now time.Time
	// Replicas are the replicas by id.
	Replicas map[string]LiveReplica
}

// Beat records that replica id is live with state, on the server's clock,
// and returns every replica that beat within forget (older beats are
// removed). An empty state removes id (it leaves). In quorum mode every
// node is told and a majority must answer; a replica's latest beat over
// the nodes that answered counts.
func (s *Store) Beat(ctx context.Context, id, state string, forget time.Duration) (Live, error) {
	keys := s.liveKeys()
	args := []any{id, state, forget.Milliseconds()}
	lives, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (Live, error) {
		v, err := evalScript(ctx, c, beatScript, beatLua, []any{keys[0], keys[1]}, args)
		if err != nil {
			return Live{}, err
		}
		return parseLive(v)
	})
	if err != nil {
		return Live{}, fmt.Errorf("store: beat of %q: %w", id, err)
	}
	out := Live{Replicas: map[string]LiveReplica{}}
	for _, l := range lives {
		if l.Now.After(out.Now) {
			out.Now = l.Now
		}
		for id, r := range l.Replicas {
			if r.Beat.After(out.Replicas[id].Beat) {
				out.Replicas[id] = r
			}
		}
	}
	return out, nil
}

// parseLive decodes beat.lua's reply.
func parseLive(v any) (Live, error) {
	a, ok := v.([]any)
	if !ok || len(a) != 3 {
		return Live{}, fmt.Errorf("store: unexpected beat reply %v", v)
	}
	now, ok1 := a[0].(int64)
	beats, ok2 := a[1].([]any)
	states, ok3 := a[2].([]any)
	if !ok1 || !ok2 || !ok3 {
		return Live{}, fmt.Errorf("store: unexpected beat reply %v", v)
	}
	l := Live{Now: time.UnixMilli(now), Replicas: make(map[string]LiveReplica, len(beats)/2)}
	for i := 0; i+1 < len(beats); i += 2 {
		id, _ := beats[i].(string)
		var ms int64
		switch s := beats[i+1].(type) {
		case string:
			ms, _ = strconv.ParseInt(s, 10, 64)
		case float64: // RESP3 scores
			ms = int64(s)
		case int64:
			ms = s
		}
		l.Replicas[id] = LiveReplica{Beat: time.UnixMilli(ms)}
	}
	for i := 0; i+1 < len(states); i += 2 {
		id, _ := states[i].(string)
		st, _ := states[i+1].(string)
		if r, ok := l.Replicas[id]; ok {
			r.State = st
			l.Replicas[id] = r
		}
	}
	return l, nil
}

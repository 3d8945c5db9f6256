package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler/notify"
	"github.com/redcron/redcron/scheduler/store"
)

// TestNotificationsOncePerEvent: three replicas run a job that fails on
// even slots and succeeds on odd ones, with notify: {on: [failure,
// recovery]} to a local receiver that refuses the first delivery of every
// event. Each failure and each recovery reaches the receiver exactly once
// (sent by the replica that recorded it, retried after the refusal), and
// nothing else does.
func TestNotificationsOncePerEvent(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	type key struct {
		slot int64
		kind string
	}
	var mu sync.Mutex
	got := map[key]int{}
	tries := map[key]int{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Text   string `json:"text"`
			Event  string `json:"event"`
			Record string `json:"record"`
		}
		var raw map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			t.Errorf("body: %v", err)
			return
		}
		_ = json.Unmarshal(raw["text"], &body.Text)
		_ = json.Unmarshal(raw["event"], &body.Event)
		var rec store.Record
		if err := json.Unmarshal(raw["record"], &rec); err != nil {
			var s string // the record may come as an encoded string
			if json.Unmarshal(raw["record"], &s) != nil || json.Unmarshal([]byte(s), &rec) != nil {
				t.Errorf("record: %s", raw["record"])
			}
		}
		k := key{rec.Slot.Unix(), body.Event}
		mu.Lock()
		defer mu.Unlock()
		tries[k]++
		if tries[k] == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // the receiver fails once
			return
		}
		got[k]++
	}))
	t.Cleanup(recv.Close)

	jobs.Register("flaky.notify", func(ctx context.Context, r jobs.Run, _ struct{}) error {
		if r.Slot.Unix()%2 == 0 {
			return fmt.Errorf("even slot %d fails", r.Slot.Unix())
		}
		return nil
	})
	js := []*jobs.Job{testJob(t, "flaky", "* * * * * *", "flaky.notify", func(j *jobs.Job) {
		j.Notify = &jobs.Notify{On: []string{jobs.NotifyFailure, jobs.NotifyRecovery}, Webhook: recv.URL, Timeout: time.Second}
	})}
	begin := nextSecond(300 * time.Millisecond)
	waitUntil(begin)
	for i := range 3 {
		startInstance(t, srv, js, Options{Replica: fmt.Sprintf("r%d", i), Notify: notify.Options{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
	}
	end := begin.Add(6 * time.Second)
	waitUntil(end.Add(2 * time.Second))
	mu.Lock()
	defer mu.Unlock()
	for s := begin.Unix() + 2; s <= end.Unix(); s++ {
		want := key{s, notify.KindFailure}
		if s%2 != 0 {
			want = key{s, notify.KindRecovery}
		}
		if got[want] != 1 {
			t.Errorf("slot %d: %s delivered %d times (%d tries), want once", s, want.kind, got[want], tries[want])
		}
	}
	for k, n := range got {
		if (k.kind == notify.KindFailure) != (k.slot%2 == 0) || n != 1 {
			t.Errorf("unexpected delivery: slot %d %s x%d", k.slot, k.kind, n)
		}
	}
	t.Logf("deliveries: %v", got)
}

package store

import (
	"testing"
	"time"
)

// TestJobKeys checks every key of a job, read out of the one string that
// holds the fixed ones.
func TestJobKeys(t *testing.T) {
	slot := time.Unix(1700000000, 0)
	for _, tt := range []struct {
		prefix, job, p string
	}{
		{"", "backup", "redcron:{backup}:"},
		{"acme", "j", "acme:{j}:"},
		{"x", "a-much-longer-job-name.with.dots", "x:{a-much-longer-job-name.with.dots}:"},
	} {
		t.Run(tt.p, func(t *testing.T) {
			k := JobKeys(tt.prefix, tt.job)
			for _, c := range []struct{ got, want string }{
				{k.Job, tt.job},
				{k.Meta(), tt.p + "meta"},
				{k.Lease(), tt.p + "lease"},
				{k.History(), tt.p + "history"},
				{k.Running(), tt.p + "running"},
				{k.Paused(), tt.p + "paused"},
				{k.Ring(), tt.p + "ring"},
				{k.Next(), tt.p + "next"},
				{k.Events(), tt.p + "events"},
				{k.Mark(slot), tt.p + "slot:1700000000"},
				{k.SlotLease(slot), tt.p + "lease:1700000000"},
				{k.ManualMark(7), tt.p + "manual:7"},
			} {
				if c.got != c.want {
					t.Errorf("got %q, want %q", c.got, c.want)
				}
			}
		})
	}
}

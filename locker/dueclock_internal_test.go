package locker

import (
	"testing"
	"time"
)

// TestDueClock: a reply's wait becomes a local instant from the node's best
// recent sample of its clock when that is earlier than the reply's own
// answer (with the drift allowance), from the reply itself otherwise, and
// never from a sample older than dueSampleAge.
func TestDueClock(t *testing.T) {
	const dueMS = 1_000_000 // Claim.Due on the server's clock
	ms := time.Millisecond
	// drift is the allowance on a span measured from a sample.
	drift := func(span time.Duration) time.Duration { return span + span/dueMaxDrift }
	type reply struct {
		read time.Duration // when the reply was read
		wait int64         // ms until dueMS, as the reply said
		want time.Duration // Lease.Due (-1: zero)
	}
	for _, tc := range []struct {
		name    string
		replies []reply
	}{
		{"first reply: its own answer", []reply{{0, 3000, 3000 * ms}}},
		{"due already: zero, no sample", []reply{{0, 0, -1}, {ms, -5, -1}, {2 * ms, 3000, 3002 * ms}}},
		{"queued reply: the sample's answer", []reply{
			{0, 3000, 3000 * ms},
			// Read 400ms later, but the server saw 100ms pass: the
			// reply queued 300ms longer than the sample's.
			{400 * ms, 2900, drift(3000 * ms)},
		}},
		{"less queued reply: its own answer, then the sample", []reply{
			{0, 3000, 3000 * ms},
			{100 * ms, 2850, 2950 * ms}, // the first queued 50ms longer
			{200 * ms, 2800, 100*ms + drift(2850*ms)},
		}},
		{"sample too old: the reply's own answer", []reply{
			{0, 3000, 3000 * ms},
			{dueSampleAge + ms, 500, dueSampleAge + 501*ms},
			{dueSampleAge + 100*ms, 450, dueSampleAge + ms + drift(500*ms)},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d dueClock
			t0 := time.Now()
			for i, r := range tc.replies {
				got := d.local(t0.Add(r.read), dueMS, r.wait)
				switch {
				case r.want < 0 && !got.IsZero():
					t.Errorf("reply %d: got %v after t0, want zero", i, got.Sub(t0))
				case r.want >= 0 && !got.Equal(t0.Add(r.want)):
					t.Errorf("reply %d: got %v after t0, want %v", i, got.Sub(t0), r.want)
				}
			}
		})
	}
}

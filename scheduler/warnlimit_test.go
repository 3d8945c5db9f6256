package scheduler

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
)

// warnLine is what the tests read of a log line.
type warnLine struct {
	Level      string `json:"level"`
	Message    string `json:"message"`
	Of         string `json:"of"`
	Suppressed int    `json:"suppressed"`
	Written    int    `json:"written"`
}

func readWarnLines(t *testing.T, text string) []warnLine {
	t.Helper()
	var ls []warnLine
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l warnLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		ls = append(ls, l)
	}
	return ls
}

// suppressedLine is warnLimit's report of suppressed lines.
const suppressedLine = "warnings suppressed: too many of one kind; the metrics count every one"

// TestWarnLimit: of each kind, warnBurst lines a window are allowed and
// the rest counted; the count is reported once the window is over, before
// the kind's next line or by flush, and by a final flush at once; a
// clock stepped back starts a new window; kinds do not share a window.
func TestWarnLimit(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	type step struct {
		at    time.Duration // after t0
		kind  warnKind
		n     int  // lines asked for (allow), or 0 for a flush
		final bool // the flush is Run's last
	}
	for _, tt := range []struct {
		name        string
		steps       []step
		wantAllowed int
		wantReports []int // suppressed counts reported, in order
	}{
		{"within the burst", []step{{0, warnSkipped, warnBurst, false}, {2 * time.Second, 0, 0, true}}, warnBurst, nil},
		{"over the burst, reported before the next window's line",
			[]step{{0, warnSkipped, warnBurst + 7, false}, {warnWindow, warnSkipped, 1, false}}, warnBurst + 1, []int{7}},
		{"flush before the window ends reports nothing",
			[]step{{0, warnSkipped, warnBurst + 3, false}, {warnWindow / 2, 0, 0, false}}, warnBurst, nil},
		{"flush once the window is over",
			[]step{{0, warnSkipped, warnBurst + 3, false}, {warnWindow, 0, 0, false}, {warnWindow, 0, 0, false}}, warnBurst, []int{3}},
		{"final flush at once",
			[]step{{0, warnClaimFailed, warnBurst + 4, false}, {time.Millisecond, 0, 0, true}}, warnBurst, []int{4}},
		{"a window per kind",
			[]step{{0, warnSkipped, warnBurst + 1, false}, {0, warnClaimFailed, warnBurst + 2, false}, {warnWindow, 0, 0, false}},
			2 * warnBurst, []int{1, 2}},
		{"clock stepped back: a new window",
			[]step{{0, warnSkipped, warnBurst + 5, false}, {-time.Hour, warnSkipped, warnBurst, false}, {-time.Hour, warnSkipped, 1, false}},
			2 * warnBurst, []int{5}},
		{"the suppressed in the next window reported apart",
			[]step{{0, warnSkipped, warnBurst + 2, false}, {warnWindow, warnSkipped, warnBurst + 9, false}, {3 * warnWindow, 0, 0, false}},
			2 * warnBurst, []int{2, 9}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock(t0)
			var buf strings.Builder
			w := newWarnLimit(clk, zerolog.New(&buf))
			allowed := 0
			for _, st := range tt.steps {
				clk.Advance(t0.Add(st.at).Sub(clk.Now()))
				if st.n == 0 {
					w.flush(st.final)
					continue
				}
				for range st.n {
					if w.allow(st.kind) {
						allowed++
					}
				}
			}
			if allowed != tt.wantAllowed {
				t.Errorf("lines allowed: got %d, want %d", allowed, tt.wantAllowed)
			}
			var reports []int
			for _, l := range readWarnLines(t, buf.String()) {
				if l.Message != suppressedLine || l.Level != "warn" || l.Of == "" {
					t.Errorf("line %+v: want a warn line %q naming its kind", l, suppressedLine)
				}
				reports = append(reports, l.Suppressed)
			}
			if fmt.Sprint(reports) != fmt.Sprint(tt.wantReports) {
				t.Errorf("suppressed counts reported: got %v, want %v", reports, tt.wantReports)
			}
		})
	}
}

// TestOutageWarningsBounded: when Redis is down for a replica with many
// jobs a second, its first failed claims and then the skips it records
// once Redis is back come in bursts far above warnBurst a second: the
// log keeps at most warnBurst lines of each kind a window, and reports
// the rest, so that lines written and suppressed add up to the skips the
// metrics count (nothing is lost from the account).
func TestOutageWarningsBounded(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	const n = 60
	fn := registerLedgerFunc(&ledger{}, behaviour{})
	var js []*jobs.Job
	for i := range n {
		js = append(js, testJob(t, fmt.Sprintf("warn%02d", i), "* * * * * *", fn, func(j *jobs.Job) {
			j.CatchupWindow = 0 // so that skips are recorded within the test
		}))
	}
	logs := &lockedBuffer{}
	log := zerolog.New(logs).Level(zerolog.WarnLevel)
	reg := prometheus.NewRegistry()
	begin := nextSecond(300 * time.Millisecond)
	waitUntil(begin)
	in := startInstance(t, srv, js, Options{Replica: "w0", Registerer: reg, Logger: &log, MaxClockSkew: 500 * time.Millisecond})
	waitUntil(begin.Add(2 * time.Second))
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // the outage's skips are recorded 1.5 s after their slots, once Redis answers
	in.stop(t)

	written := map[string]int{}
	suppressed := map[string]int{}
	for _, l := range readWarnLines(t, logs.String()) {
		if l.Message == suppressedLine {
			suppressed[l.Of] += l.Suppressed
			if l.Written != warnBurst {
				t.Errorf("report %+v: written %d, want %d (lines are suppressed only past the burst)", l, l.Written, warnBurst)
			}
			continue
		}
		written[l.Message]++
	}
	skipMsg, claimMsg, withdrawMsg := warnMsg[warnSkipped], warnMsg[warnClaimFailed], warnMsg[warnWithdrawFailed]
	// About 3 s of failed claims, withdrawals and skips: at most a window's
	// burst in each second, plus one window begun in the last.
	for _, m := range []string{skipMsg, claimMsg, withdrawMsg} {
		if suppressed[m] == 0 {
			t.Errorf("%q: got %d written and none suppressed, want some suppressed (%d jobs a second)", m, written[m], n)
		}
		if limit := 12 * warnBurst; written[m] > limit {
			t.Errorf("%q: got %d lines written in ~12 s, want at most %d", m, written[m], limit)
		}
	}
	skips := counterSum(t, reg, "redcron_skipped_slots_total")
	if got := written[skipMsg] + suppressed[skipMsg]; float64(got) != skips || skips < n {
		t.Errorf("skips: %d written + %d suppressed = %d, want redcron_skipped_slots_total %v (at least %d)",
			written[skipMsg], suppressed[skipMsg], got, skips, n)
	}
	t.Logf("written %v; suppressed %v; skips counted %v", written, suppressed, skips)
}

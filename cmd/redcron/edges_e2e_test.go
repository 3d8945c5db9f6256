package main

// TestMultiProcessEdges: the events of real deployments, on the built
// binary as three replicas over one real redis-server. Replica A reaches
// Redis through a proxy that holds its replies (a late reply at a slot
// instant) and then cuts it off for longer than its lease; replica C's
// clock is stepped 10 s ahead and back. Command jobs write a ledger of
// every start and end; the ledger, Redis's history and the replicas'
// /readyz are checked against DESIGN promises 1, 2, 3, 8 and 9.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/scheduler/store"
)

// edgeRun is one run in the ledger: its start line, and its end line when
// the command ended (normally, or by SIGTERM through its trap).
type edgeRun struct {
	job        string
	slot       time.Time
	fence      int64
	replica    string
	manual     bool
	start, end time.Time
	// startUnknown: the start line has no time, because the run was told
	// to stop (SIGTERM to its process group) while date was computing it;
	// start is then the end line's time, a bound from above.
	startUnknown bool
	line         int
}

// readEdgeLedger reads "start JOB SLOT FENCE REPLICA MANUAL EPOCH" and
// "end JOB SLOT FENCE REPLICA EPOCH" lines into runs. A start line without
// its EPOCH (its date killed by the stop) gives a run whose start is
// unknown; it takes its end's time.
func readEdgeLedger(t *testing.T, path string) []*edgeRun {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var runs []*edgeRun
	byKey := map[string]*edgeRun{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 {
			t.Errorf("ledger line %d %q: too few fields", n, sc.Text())
			continue
		}
		slot, err1 := time.Parse(time.RFC3339, fs[2])
		fence, err2 := strconv.ParseInt(fs[3], 10, 64)
		var at time.Time // zero for a start line without its time (startUnknown)
		var err3 error
		if fs[0] != "start" || len(fs) != 6 {
			var sec float64
			sec, err3 = strconv.ParseFloat(fs[len(fs)-1], 64)
			at = time.Unix(0, int64(sec*1e9))
		}
		if err1 != nil || err2 != nil || err3 != nil {
			t.Errorf("ledger line %d %q: %v %v %v", n, sc.Text(), err1, err2, err3)
			continue
		}
		key := fs[1] + " " + fs[3]
		switch fs[0] {
		case "start":
			r := &edgeRun{job: fs[1], slot: slot, fence: fence, replica: fs[4], manual: fs[5] == "1", start: at, startUnknown: at.IsZero(), line: n}
			runs = append(runs, r)
			byKey[key] = r
		case "end":
			if r := byKey[key]; r != nil {
				r.end = at
				if r.startUnknown {
					r.start = at
					t.Logf("ledger line %d: (%s, %s) fence %d on %s was stopped while writing its start; its start is taken as its end, %s",
						r.line, r.job, r.slot.Format(time.TimeOnly), r.fence, r.replica, at.Format("15:04:05.000"))
				}
			} else {
				t.Errorf("ledger line %d: end of a run that never started: %q", n, sc.Text())
			}
		}
	}
	return runs
}

// TestReadEdgeLedger: the ledger's parser, on the lines a run writes,
// including a start line whose time its stop cut off.
func TestReadEdgeLedger(t *testing.T) {
	const slot = "2026-12-05T01:00:03Z"
	at := func(s float64) time.Time { return time.Unix(0, int64(s*1e9)) }
	for _, tc := range []struct {
		name             string
		lines            string
		wantStart        time.Time
		wantEnd          time.Time
		wantStartUnknown bool
	}{
		{"start and end", "start repl " + slot + " 7 a 0 1796432403.25\nend repl " + slot + " 7 a 1796432404.5\n", at(1796432403.25), at(1796432404.5), false},
		{"start only", "start tick1 " + slot + " 7 a 0 1796432403.25\n", at(1796432403.25), time.Time{}, false},
		{"start without its time", "start repl " + slot + " 7 a 0\nend repl " + slot + " 7 a 1796432404.5\n", at(1796432404.5), at(1796432404.5), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ledger")
			if err := os.WriteFile(path, []byte(tc.lines), 0o600); err != nil {
				t.Fatal(err)
			}
			runs := readEdgeLedger(t, path)
			if len(runs) != 1 {
				t.Fatalf("got %d runs, want 1", len(runs))
			}
			r := runs[0]
			if !r.start.Equal(tc.wantStart) || !r.end.Equal(tc.wantEnd) || r.startUnknown != tc.wantStartUnknown {
				t.Errorf("got start %v end %v startUnknown %v, want %v %v %v", r.start, r.end, r.startUnknown, tc.wantStart, tc.wantEnd, tc.wantStartUnknown)
			}
			if r.fence != 7 || r.replica != "a" || r.manual {
				t.Errorf("got fence %d replica %q manual %v, want 7 \"a\" false", r.fence, r.replica, r.manual)
			}
		})
	}
}

// freeAddr returns a free loopback address for a replica's --http.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls http://addr/readyz until its status is want (200 or
// 503), for at most d; it returns how long that took.
func waitReady(t *testing.T, addr string, want int, d time.Duration) time.Duration {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	start := time.Now()
	for {
		resp, err := c.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return time.Since(start)
			}
		}
		if time.Since(start) > d {
			t.Fatalf("/readyz of %s: not %d within %v (last: %v %v)", addr, want, d, resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMultiProcessEdges(t *testing.T) {
	const (
		prefix  = "edge"
		lockTTL = 3 * time.Second
		grace   = 3 * time.Second
		held    = 900 * time.Millisecond
		cutFor  = 7 * time.Second // more than twice the lease
	)
	bin := buildRedcron(t)
	srv := redistest.Start(t, redistest.Options{AOF: true, Args: []string{"--maxmemory-policy", "noeviction"}})
	proxy := redistest.StartProxyFor(t, srv)
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger")
	offsetFile := filepath.Join(dir, "offset")
	for _, f := range []struct{ path, body string }{{ledger, ""}, {offsetFile, "0s"}} {
		if err := os.WriteFile(f.path, []byte(f.body), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// Every run writes its start; long runs also their end, from a trap when
	// they are told to stop (SIGTERM to the group: sleep dies, wait returns).
	fields := `$REDCRON_JOB $REDCRON_SLOT $REDCRON_FENCE $REDCRON_REPLICA`
	startLine := fmt.Sprintf(`echo "start %s ${REDCRON_MANUAL:-0} $(date +%%s.%%N)" >> '%s'`, fields, ledger)
	endLine := fmt.Sprintf(`echo "end %s $(date +%%s.%%N)" >> '%s'`, fields, ledger)
	short := startLine
	long := func(d time.Duration) string {
		return fmt.Sprintf(`trap '%s; exit 143' TERM; %s; sleep %d & wait; %s`,
			strings.ReplaceAll(endLine, "'", `'"'"'`), startLine, int(d.Seconds()), endLine)
	}
	argv := func(script string) string {
		return strconv.Quote("sh") + ", " + strconv.Quote("-c") + ", " + strconv.Quote(script)
	}
	shortJobs := []string{"tick1", "tick2", "tick3", "tick4"}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `redis:
  prefix: %s
shutdown_grace: %v
defaults:
  lock_ttl: %v
  kill_grace: 1s
jobs:
`, prefix, grace, lockTTL)
	for _, j := range shortJobs {
		fmt.Fprintf(&cfg, "  %s:\n    schedule: \"* * * * * *\"\n    command: [%s]\n", j, argv(short))
	}
	fmt.Fprintf(&cfg, "  longf:\n    schedule: \"* * * * * *\"\n    overlap: forbid\n    command: [%s]\n", argv(long(5*time.Second)))
	fmt.Fprintf(&cfg, "  repl:\n    schedule: \"*/3 * * * * *\"\n    overlap: replace\n    command: [%s]\n", argv(long(20*time.Second)))
	config := filepath.Join(dir, "jobs.yaml")
	if err := os.WriteFile(config, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	httpA, httpC := freeAddr(t), freeAddr(t)
	run := func(name, url, httpAddr string) *e2eProc {
		return startRedcron(t, bin, name, filepath.Join(dir, name+".log"),
			"run", "--config", config, "--redis", url, "--replica", name, "--http", httpAddr, "--log-level", "info")
	}
	a := run("replica-a", proxy.URL(), httpA)
	b := run("replica-b", srv.URL(), "off")
	c := startRedcronEnv(t, bin, "replica-c", filepath.Join(dir, "replica-c.log"), []string{"REDCRON_CLOCK_OFFSET_FILE=" + offsetFile},
		"run", "--config", config, "--redis", srv.URL(), "--replica", "replica-c", "--http", httpC, "--log-level", "info")
	for _, p := range []*e2eProc{a, b, c} {
		p.waitLog(t, "redcron started", e2eStartTimeout)
	}
	waitReady(t, httpA, http.StatusOK, 5*time.Second)
	waitReady(t, httpC, http.StatusOK, 5*time.Second)
	t0 := time.Now()
	t.Logf("%s: all 3 replicas started and ready", t0.Format("15:04:05.000"))

	// 1. Late replies: A's replies held 900 ms at four slot instants.
	var holds []time.Time
	for i := range 4 {
		at := t0.Truncate(time.Second).Add(time.Duration(2+2*i) * time.Second)
		time.Sleep(time.Until(at.Add(-2 * time.Millisecond)))
		proxy.Hold(redistest.ToClient)
		time.Sleep(time.Until(at.Add(held)))
		proxy.Release(redistest.ToClient)
		holds = append(holds, at)
	}
	t.Logf("%s: A's replies held %v at %d slot instants", time.Now().Format("15:04:05.000"), held, len(holds))

	// 2. A cut off from Redis for more than twice its lease.
	proxy.Block(true)
	cutAt := time.Now()
	waitReady(t, httpA, http.StatusServiceUnavailable, 5*time.Second)
	time.Sleep(time.Until(cutAt.Add(cutFor)))
	proxy.Block(false)
	healedAt := time.Now()
	t.Logf("%s: A cut off for %v, healed", healedAt.Format("15:04:05.000"), healedAt.Sub(cutAt).Round(time.Millisecond))

	// 3. C's clock steps 10 s ahead, then back.
	if err := os.WriteFile(offsetFile, []byte("10s"), 0o600); err != nil {
		t.Fatal(err)
	}
	stepAt := time.Now()
	notReady := waitReady(t, httpC, http.StatusServiceUnavailable, 5*time.Second)
	waitReady(t, httpA, http.StatusOK, 5*time.Second) // A is back by now
	time.Sleep(time.Until(stepAt.Add(5 * time.Second)))
	if err := os.WriteFile(offsetFile, []byte("0s"), 0o600); err != nil {
		t.Fatal(err)
	}
	backAt := time.Now()
	ready := waitReady(t, httpC, http.StatusOK, 5*time.Second)
	t.Logf("%s: C's clock +10s: /readyz 503 after %v; back to 0: 200 after %v", backAt.Format("15:04:05.000"),
		notReady.Round(time.Millisecond), ready.Round(time.Millisecond))
	time.Sleep(4 * time.Second)

	live := []*e2eProc{a, b, c}
	var termAt time.Time
	for _, p := range live {
		if at := p.signal(t, syscall.SIGTERM); termAt.IsZero() {
			termAt = at
		}
	}
	for _, p := range live {
		if !p.wait(time.Until(termAt.Add(grace + e2eExitMargin))) {
			t.Fatalf("%s still running after SIGTERM; log:\n%s", p.name, tail(p.log))
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s exited %v, want 0", p.name, p.cmd.ProcessState)
		}
	}

	runs := readEdgeLedger(t, ledger)
	from := t0.Truncate(time.Second).Add(time.Second).Unix()
	to := termAt.Add(-time.Second).Truncate(time.Second).Unix()

	// Promise 1: no (job, slot) twice, fences follow slots; nothing early.
	seen := map[jobSlot]*edgeRun{}
	dups, early := 0, 0
	for _, r := range runs {
		k := jobSlot{r.job, r.slot.Unix()}
		if prev, ok := seen[k]; ok && !r.manual {
			dups++
			t.Errorf("duplicate run of (%s, %s): fence %d on %s and fence %d on %s", r.job, r.slot.Format(time.TimeOnly), prev.fence, prev.replica, r.fence, r.replica)
		}
		seen[k] = r
		if r.startUnknown && r.end.IsZero() {
			t.Errorf("(%s, %s) fence %d on %s: its start line has no time and it has no end line", r.job, r.slot.Format(time.TimeOnly), r.fence, r.replica)
		}
		if !r.startUnknown && r.start.Before(r.slot) {
			early++
			t.Errorf("(%s, %s) started early, at %s on %s", r.job, r.slot.Format(time.TimeOnly), r.start.Format("15:04:05.000"), r.replica)
		}
	}
	byJob := map[string][]*edgeRun{}
	for _, r := range runs {
		byJob[r.job] = append(byJob[r.job], r)
	}
	regressions := 0
	for job, rs := range byJob {
		sort.Slice(rs, func(i, j int) bool { return rs[i].slot.Before(rs[j].slot) })
		for i := 1; i < len(rs); i++ {
			if rs[i].fence <= rs[i-1].fence {
				regressions++
				t.Errorf("%s: fence %d at slot %s after fence %d at slot %s", job, rs[i].fence, rs[i].slot.Format(time.TimeOnly), rs[i-1].fence, rs[i-1].slot.Format(time.TimeOnly))
			}
		}
	}

	// Promise 3 and replace: the long jobs' runs never overlap, across the
	// cut (A's run is stopped before its lease can expire) and across
	// replacements (the new run waits for the old one to stop).
	overlaps := 0
	for _, job := range []string{"longf", "repl"} {
		rs := slices.Clone(byJob[job])
		sort.Slice(rs, func(i, j int) bool { return rs[i].start.Before(rs[j].start) })
		for i := 1; i < len(rs); i++ {
			prev := rs[i-1]
			if prev.end.IsZero() || rs[i].start.Before(prev.end) {
				overlaps++
				t.Errorf("%s runs overlap: fence %d on %s [%s, %s] and fence %d on %s from %s", job,
					prev.fence, prev.replica, prev.start.Format("15:04:05.000"), prev.end.Format("15:04:05.000"),
					rs[i].fence, rs[i].replica, rs[i].start.Format("15:04:05.000"))
			}
		}
		if len(rs) < 3 {
			t.Errorf("%s: got %d runs, want at least 3", job, len(rs))
		}
	}

	// Promises 2 and 9: every slot of the short jobs ran, or its one final
	// record in the history says why (a claim by A that could not be
	// confirmed before its window closed).
	hc := srv.Client(t)
	explained, missed := map[string]int{}, 0
	for _, job := range shortJobs {
		hist, err := hc.ZRevRange(context.Background(), store.JobKeys(prefix, job).History(), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		recs := map[int64][]store.Record{}
		for _, h := range hist {
			r, err := store.ParseRecord(h)
			if err != nil {
				t.Errorf("%s history: %v", job, err)
				continue
			}
			recs[r.Slot.Unix()] = append(recs[r.Slot.Unix()], r)
		}
		for s := from; s <= to; s++ {
			rs := recs[s]
			if len(rs) > 1 {
				t.Errorf("(%s, %d): %d final records, want 1: %+v", job, s, len(rs), rs)
			}
			if _, ran := seen[jobSlot{job, s}]; ran {
				continue
			}
			missed++
			switch {
			case len(rs) == 1 && rs[0].Outcome == store.OutcomeSkipped && rs[0].Replica == a.name:
				explained[rs[0].Reason]++
			case len(rs) == 1 && rs[0].Outcome == store.OutcomeSkipped && rs[0].Reason == store.ReasonOverlap &&
				heldBy(byJob[job], s, a.name) && s > cutAt.Unix()-1 && s <= cutAt.Add(lockTTL).Unix()+1:
				// A ran the slot before just as it was cut off: its finish
				// could not reach Redis, so the job's lease stayed until
				// its TTL, and overlap forbid skipped the slots meanwhile.
				explained["overlap, after A's run that could not finish before the cut"]++
			case len(rs) == 1 && rs[0].Outcome == store.OutcomeSkipped && rs[0].Reason == store.ReasonOverlap &&
				abortedBy(recs, s, a.name, lockTTL):
				// A's claim of an earlier slot won in Redis but its reply
				// was held or cut, and A gave it up: until A could tell
				// Redis so, the claim kept the job's lease (it may have
				// been running), and overlap forbid skipped the slots.
				explained["overlap, after A's claim whose reply was lost"]++
			default:
				t.Errorf("(%s, %s) did not run: records %+v", job, time.Unix(s, 0).UTC().Format(time.TimeOnly), rs)
			}
		}
	}

	// A's claims failed while held and cut, and stopped failing once
	// healed; C claimed nothing while its clock was off.
	aFailed, aFailedAfter := 0, 0
	for _, l := range readLogs(t, a.log) {
		if l.Message == "claim failed; retrying the same claim, nothing runs without it" {
			aFailed++
			if at, err := time.Parse(time.RFC3339, l.Slot); err == nil && at.After(healedAt.Add(2*time.Second)) {
				aFailedAfter++
			}
		}
	}
	if aFailed == 0 || aFailedAfter > 0 {
		t.Errorf("A's failed claims: %d in all, %d more than 2s after healing; want some, then none", aFailed, aFailedAfter)
	}
	cWhile := 0
	for _, r := range runs {
		if r.replica == c.name && r.start.After(stepAt.Add(time.Second)) && r.start.Before(backAt) {
			cWhile++
			t.Errorf("C ran (%s, %s) at %s while its clock was 10s ahead", r.job, r.slot.Format(time.TimeOnly), r.start.Format("15:04:05.000"))
		}
	}
	perReplica := map[string]int{}
	for _, r := range runs {
		perReplica[r.replica]++
	}
	t.Logf("ledger: %d runs, %d duplicates, %d early, %d fence regressions, %d overlapping long runs; per replica %v",
		len(runs), dups, early, regressions, overlaps, perReplica)
	t.Logf("window %s..%s: %d short-job slots, %d not run, explained by A's records: %v",
		time.Unix(from, 0).UTC().Format(time.TimeOnly), time.Unix(to, 0).UTC().Format(time.TimeOnly),
		int(to-from+1)*len(shortJobs), missed, explained)
}

// heldBy reports whether the last run of a job before slot s was on replica.
// abortedBy says whether replica gave up (recorded aborted) a claim of one
// of the slots less than ttl before s.
func abortedBy(recs map[int64][]store.Record, s int64, replica string, ttl time.Duration) bool {
	for p := s - int64(ttl/time.Second) - 1; p < s; p++ {
		for _, r := range recs[p] {
			if r.Outcome == store.OutcomeSkipped && r.Reason == store.ReasonAborted && r.Replica == replica {
				return true
			}
		}
	}
	return false
}

func heldBy(rs []*edgeRun, s int64, replica string) bool {
	var last *edgeRun
	for _, r := range rs {
		if r.slot.Unix() < s && (last == nil || r.slot.After(last.slot)) {
			last = r
		}
	}
	return last != nil && last.replica == replica
}

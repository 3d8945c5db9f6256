package main

import (
	"context"
	"fmt"
	"io"

	"github.com/redcron/redcron/scheduler/store"
)

// historyCommand is `redcron history JOB`: the job's final records, newest
// first (runs and skips, manual runs flagged).
func historyCommand(args []string, stdout, stderr io.Writer) int {
	c := newControlFlags("history", stderr, true)
	limit := c.fs.Int("limit", 20, "how many records")
	failures := c.fs.Bool("failures", false, "only runs that did not succeed")
	pos, cfg, st, closeConn, code := c.begin(args, 1, 1, stderr)
	if cfg == nil {
		return code
	}
	defer closeConn()
	if *limit < 1 {
		fmt.Fprintln(stderr, "redcron history: --limit must be at least 1")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	recs, err := st.History(ctx, pos[0], store.Page{Limit: *limit, Failures: *failures})
	if err != nil {
		fmt.Fprintf(stderr, "redcron history: %v\n", err)
		return exitFailure
	}
	if recs == nil {
		recs = []store.Record{}
	}
	if *c.json {
		printJSON(stdout, recs)
		return exitOK
	}
	tw := table(stdout, "SLOT", "OUTCOME", "REASON", "REPLICA", "FENCE", "ATTEMPTS", "DURATION", "MANUAL", "ERROR")
	for _, r := range recs {
		manual := ""
		if r.Manual {
			manual = "manual"
		}
		dur := "-"
		if !r.Started.IsZero() {
			dur = fmt.Sprintf("%dms", r.DurationMS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", utc(r.Slot), r.Outcome, orDash(r.Reason), orDash(r.Replica),
			r.Fence, r.Attempts, dur, manual, orDash(brief(r.Error, 60)))
	}
	if len(recs) == 0 {
		fmt.Fprintln(tw, "(no record yet)")
	}
	_ = tw.Flush()
	return exitOK
}

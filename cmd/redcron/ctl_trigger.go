package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/redcron/redcron/scheduler/store"
)

// Bounds of the control commands.
const (
	controlTimeout = 5 * time.Second  // each command's Redis calls
	takeTimeout    = 10 * time.Second // a live replica takes a trigger request
	waitPoll       = 200 * time.Millisecond
)

// triggerCommand is `redcron trigger JOB [--wait] [--json]`: the request is
// queued in Redis and taken by a live replica, which runs the job now as a
// manual run under overlap rules. With --wait it prints the run's record
// and exits 0 when its outcome is ok, 1 otherwise.
func triggerCommand(args []string, stdout, stderr io.Writer) int {
	c := newControlFlags("trigger", stderr, true)
	wait := c.fs.Bool("wait", false, "wait for the run's record and print it; exit 1 unless its outcome is ok")
	limit := c.fs.Duration("timeout", time.Hour, "with --wait, how long to wait for the record")
	pos, cfg, st, closeConn, code := c.begin(args, 1, 1, stderr)
	if cfg == nil {
		return code
	}
	defer closeConn()
	job := pos[0]
	now := time.Now()
	req := store.TriggerRequest{ID: now.UnixNano(), Job: job, RequestedAt: now.UTC(), By: who()}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	err := st.QueueTrigger(ctx, req)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "redcron trigger: %v\n", err)
		return exitFailure
	}
	// A live replica takes it within a poll; if none does, withdraw it.
	deadline := time.Now().Add(takeTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
		pending, err := st.Pending(ctx, req)
		cancel()
		if err == nil && !pending {
			break
		}
		if time.Now().After(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
			_ = st.WithdrawTrigger(ctx, req)
			cancel()
			fmt.Fprintf(stderr, "redcron trigger: no live replica took the request within %v (is one running with this config?)\n", takeTimeout)
			return exitFailure
		}
		time.Sleep(waitPoll)
	}
	if !*wait {
		fmt.Fprintf(stdout, "%s triggered (request %d); redcron history %s shows its record\n", job, req.ID, job)
		return exitOK
	}
	deadline = time.Now().Add(*limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
		m, ok, err := st.Manual(ctx, job, req.ID)
		cancel()
		if err == nil && ok && m.Ended {
			if *c.json {
				printJSON(stdout, m.Record)
			} else {
				r := m.Record
				fmt.Fprintf(stdout, "%s manual run: %s %s on %s, fence %d, %d ms\n", job, r.Outcome, orDash(r.Reason), orDash(r.Replica), r.Fence, r.DurationMS)
				if r.Error != "" {
					fmt.Fprintf(stdout, "error: %s\n", r.Error)
				}
				if r.Output != "" {
					fmt.Fprintf(stdout, "output:\n%s\n", r.Output)
				}
			}
			if m.Record.Outcome == store.OutcomeOK {
				return exitOK
			}
			return exitFailure
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "redcron trigger: no record within %v\n", *limit)
			return exitFailure
		}
		time.Sleep(waitPoll)
	}
}

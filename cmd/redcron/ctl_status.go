package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/redcron/redcron/scheduler/statusapi"
)

// statusCommand is `redcron status`: every job with its pause, what runs
// now, its next slots, its last record and drift, and the live replicas.
func statusCommand(args []string, stdout, stderr io.Writer) int {
	c := newControlFlags("status", stderr, true)
	_, cfg, st, closeConn, code := c.begin(args, 0, 0, stderr)
	if cfg == nil {
		return code
	}
	defer closeConn()
	snap := statusapi.Status(context.Background(), source{cfg, st}, statusapi.Options{Recent: 1})
	failed := snap.Error != ""
	for _, j := range snap.Jobs {
		failed = failed || j.Error != ""
	}
	if *c.json {
		printJSON(stdout, snap)
	} else {
		tw := table(stdout, "JOB", "STATE", "RUNNING", "NEXT (UTC)", "LAST", "DRIFT")
		for _, j := range snap.Jobs {
			state := "active"
			switch {
			case j.Error != "":
				state = "unknown (" + brief(j.Error, 40) + ")"
			case !j.Enabled:
				state = "disabled"
			case j.Paused:
				state = "paused: " + brief(j.Note, 40)
			}
			var running []string
			for _, r := range j.Running {
				running = append(running, fmt.Sprintf("%s on %s #%d", utc(r.Slot), r.Replica, r.Fence))
			}
			next := "-"
			if len(j.Next) > 0 {
				next = utc(j.Next[0])
			}
			last := "-"
			if l := j.Last; l != nil {
				last = fmt.Sprintf("%s %s %s", l.Outcome, orDash(l.Reason), utc(l.Slot))
				if l.Replica != "" {
					last += " on " + l.Replica
				}
			}
			drift := ""
			if j.Drift {
				drift = "DRIFT"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.Job, state, orDash(strings.Join(running, ", ")), next, last, drift)
		}
		_ = tw.Flush()
		fmt.Fprintln(stdout)
		printReplicas(stdout, snap.Replicas)
		if snap.Error != "" {
			fmt.Fprintf(stdout, "replicas unknown: %s\n", snap.Error)
		}
	}
	if failed {
		return exitFailure
	}
	return exitOK
}

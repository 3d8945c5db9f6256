package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/redcron/redcron/scheduler/statusapi"
)

// replicasCommand is `redcron replicas`: the live replicas, with their
// version, start, config hash, HTTP address and the jobs they define
// differently from the others.
func replicasCommand(args []string, stdout, stderr io.Writer) int {
	c := newControlFlags("replicas", stderr, true)
	_, cfg, st, closeConn, code := c.begin(args, 0, 0, stderr)
	if cfg == nil {
		return code
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	reps, _, err := statusapi.Replicas(ctx, st)
	if err != nil {
		fmt.Fprintf(stderr, "redcron replicas: %v\n", err)
		return exitFailure
	}
	if *c.json {
		printJSON(stdout, reps)
		return exitOK
	}
	printReplicas(stdout, reps)
	return exitOK
}

// printReplicas is the human table of the live replicas.
func printReplicas(w io.Writer, reps []statusapi.ReplicaStatus) {
	tw := table(w, "REPLICA", "VERSION", "STARTED", "CONFIG", "HTTP", "DRIFT")
	for _, r := range reps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Replica.Replica, r.Version, utc(r.Started), r.ConfigHash, orDash(r.HTTP), orDash(strings.Join(r.Drift, ",")))
	}
	if len(reps) == 0 {
		fmt.Fprintln(tw, "(no live replica)")
	}
	_ = tw.Flush()
}

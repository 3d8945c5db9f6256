package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
)

// pauseCommand is `redcron pause JOB [--note TEXT]` (on true) and `redcron
// resume JOB`: the pause holds on every replica until resumed; each paused
// slot is recorded as skipped (paused).
func pauseCommand(on bool) func(args []string, stdout, stderr io.Writer) int {
	return func(args []string, stdout, stderr io.Writer) int {
		name := "resume"
		if on {
			name = "pause"
		}
		c := newControlFlags(name, stderr, false)
		note := new(string)
		if on {
			note = c.fs.String("note", "", "why, for the page and status (default: who paused it)")
		}
		pos, cfg, st, closeConn, code := c.begin(args, 1, 1, stderr)
		if cfg == nil {
			return code
		}
		defer closeConn()
		ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
		defer cancel()
		var err error
		if on {
			if *note == "" {
				*note = "paused by " + who()
			}
			err = st.Pause(ctx, pos[0], *note)
		} else {
			err = st.Resume(ctx, pos[0])
		}
		if err != nil {
			fmt.Fprintf(stderr, "redcron %s: %v\n", name, err)
			return exitFailure
		}
		if on {
			fmt.Fprintf(stdout, "%s paused: %s\n", pos[0], *note)
		} else {
			fmt.Fprintf(stdout, "%s resumed\n", pos[0])
		}
		return exitOK
	}
}

// who names the operator: user@host.
func who() string {
	name := "someone"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

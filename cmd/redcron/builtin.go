package main

import (
	"context"

	"github.com/redcron/redcron/jobs"
)

// heartbeatArgs are the YAML args of the built-in "heartbeat" function.
type heartbeatArgs struct {
	Message string `yaml:"message"`
}

func init() {
	// heartbeat logs one line: the smallest Go job, used by the example
	// jobs.yaml to show which replica ran which slot. r.Logger already carries
	// the job, slot, replica, fence and attempt fields, so they are not
	// repeated (zerolog would write duplicate keys).
	jobs.Register("heartbeat", func(ctx context.Context, r jobs.Run, a heartbeatArgs) error {
		r.Logger.Info().Str("text", a.Message).Msg("heartbeat")
		return nil
	})
}

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/redcron/redcron/jobs"
)

// loadConfig loads path and, on failure, prints every problem to stderr and
// returns the exit code to use (2: a missing, unreadable or invalid file).
// The config's Secrets become the command's (see secretsOf).
func loadConfig(cmd, path string, stderr io.Writer) (*jobs.Config, int) {
	if path == "" {
		fmt.Fprintf(stderr, "redcron %s: --config FILE is required\n", cmd)
		return nil, exitUsage
	}
	cfg, err := jobs.Load(path)
	if err != nil {
		var ce *jobs.ConfigError
		var pe *fs.PathError
		switch {
		case errors.As(err, &ce):
			fmt.Fprintf(stderr, "%s: %d problem(s):\n", path, len(ce.Problems))
			for _, p := range ce.Problems {
				fmt.Fprintln(stderr, p.Error())
			}
		case errors.As(err, &pe):
			fmt.Fprintf(stderr, "redcron %s: cannot read config %s: %v\n", cmd, pe.Path, pe.Err)
		default:
			fmt.Fprintf(stderr, "redcron %s: %v\n", cmd, err)
		}
		return nil, exitUsage
	}
	// One Secrets for the command: the environment's and the config's.
	if sec := secretsOf(stderr); sec != nil {
		sec.Merge(cfg.Secrets)
		cfg.Secrets = sec
	}
	return cfg, exitOK
}

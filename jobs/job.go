package jobs

import (
	"time"

	"github.com/redcron/redcron/scheduler/schedule"
	"gopkg.in/yaml.v3"
)

// Overlap says what happens to a slot while a run of the same job is still going.
type Overlap string

// Overlap values.
const (
	OverlapForbid  Overlap = "forbid"  // skip the slot while this job runs anywhere (default)
	OverlapAllow   Overlap = "allow"   // run it anyway
	OverlapReplace Overlap = "replace" // cancel the running one and run this slot
)

// Job kinds (Job.Kind).
const (
	KindFunc    = "func"
	KindCommand = "command"
	KindHTTP    = "http"
)

// Retry is a job's `retry:` block: attempts within the same slot and lease.
type Retry struct {
	Attempts   int           // `attempts`: total attempts, >= 1, default 1 (no retry)
	Backoff    time.Duration // `backoff`: delay before the second attempt, doubled each time; default 1s
	MaxBackoff time.Duration // `max_backoff`: cap on the delay, >= backoff; default 1m
}

// Job is one declared job, validated. Fields not set in the file carry the
// defaults: block's values, then the built-in defaults.
type Job struct {
	Name string
	File string
	Line int // where the job's name is declared

	Spec          string            // `schedule` as written (after ${VAR} expansion)
	Schedule      schedule.Schedule // parsed `schedule`, read in Location
	Location      *time.Location    // `timezone`, default UTC
	LockTTL       time.Duration     // `lock_ttl`, >= 1s, default 30s
	Overlap       Overlap           // `overlap`, default forbid
	Timeout       time.Duration     // `timeout`, 0 = none
	Retry         Retry             // `retry`
	CatchupWindow time.Duration     // `catchup_window`, default 1m; 0 = never catch up
	Jitter        time.Duration     // `jitter`, default 0
	Enabled       bool              // `enabled`, default true

	Kind    string       // KindFunc, KindCommand or KindHTTP
	Func    string       // `func`: registered name (Kind == KindFunc)
	Args    *yaml.Node   // `args`: YAML node decoded once into the function's type (see Register); nil if absent
	Command *CommandSpec // Kind == KindCommand
	HTTP    *HTTPSpec    // Kind == KindHTTP

	fn   *funcEntry // resolved at load time
	args *funcArgs  // Args decoded into fn's type at load time; nil for a Job built by hand
}

// CommandSpec is a command job: `command:` (argv, no shell) and the
// command-only job keys `env:`, `dir:`, `kill_grace:` and `output_limit:`.
type CommandSpec struct {
	Argv        []string          // `command`: non-empty, argv[0] non-empty
	Env         map[string]string // `env`: added to the parent's environment and the REDCRON_* variables; REDCRON_* names are reserved
	Dir         string            // `dir`: working directory; relative to the config file's directory; "" = the replica's
	KillGrace   time.Duration     // `kill_grace`: SIGTERM to SIGKILL delay on cancel, default 5s
	OutputLimit int               // `output_limit`: bytes of stdout+stderr logged per run, default 64 KiB
}

// HTTPSpec is an HTTP job, the `http:` block.
type HTTPSpec struct {
	Method  string            // `method`, default GET
	URL     string            // `url`: absolute http:// or https://
	Headers map[string]string // `headers`; X-Redcron-* are set by redcron and may not be given
	Body    string            // `body`
	Expect  []int             // `expect`: accepted statuses; empty = any 2xx
	Timeout time.Duration     // `timeout`, > 0, default 10s; the run's context may end it sooner
}

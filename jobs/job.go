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

// History is a job's `history:` block: its final records are kept while
// they are among the newest Keep and younger than MaxAge.
type History struct {
	Keep   int           // `keep`, >= 1, default 100
	MaxAge time.Duration // `max_age`, >= 1m, default 168h (7 days)
}

// OrDefault is h with zero fields (a Job built in code) set to their
// defaults.
func (h History) OrDefault() History {
	if h.Keep <= 0 {
		h.Keep = DefaultHistoryKeep
	}
	if h.MaxAge <= 0 {
		h.MaxAge = DefaultHistoryMaxAge
	}
	return h
}

// Notification events: the values of a `notify:` block's `on` list, and
// the Kind of a notification.
const (
	NotifyFailure  = "failure"  // a run ended with an outcome other than ok (error, timeout, panic, lease_lost, shutdown, canceled)
	NotifyRecovery = "recovery" // a run ended ok after the job's previous final record was a failure
	NotifySkipped  = "skipped"  // a slot was recorded as skipped (paused, overlap, outage, late, aborted, clock)
)

// Notify is a job's `notify:` block: which events of the job are posted to
// a webhook. Set in defaults:, it applies to every job; a job's own block
// merges over it key by key (headers entry by entry). A nil Notify, or one
// whose On is empty (`on: []`), sends nothing.
//
// Webhook and the header values may hold secrets (a Slack webhook URL is
// one): print a Notify with String, which shows the webhook's host only.
// Notify is not part of Fingerprint: it does not change how the job runs.
type Notify struct {
	On      []string          // `on`: events among NotifyFailure, NotifyRecovery, NotifySkipped, without repeats; default [failure]
	Webhook string            // `webhook`: absolute http:// or https:// URL, required unless On is empty
	Headers map[string]string // `headers`: added to the POST; valid header names, not Content-Type or Content-Length; values may use ${VAR}
	Timeout time.Duration     // `timeout`: bound on each POST, > 0, default 5s
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
	History       History           // `history`
	Notify        *Notify           // `notify`: webhook notifications; nil = none
	OutputTail    int               // `output_tail`: bytes of command output or HTTP response kept in the run's record, default 4 KiB
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
	// Withhold names variables of the replica's environment the command
	// does not inherit: Load sets it to the config's Vars (the secrets the
	// config names); Env may still set them. REDCRON_* variables are never
	// inherited.
	Withhold []string
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

package scheduler

import (
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler/notify"
	"github.com/redcron/redcron/scheduler/redisconn"
	"github.com/redcron/redcron/scheduler/store"
)

// Defaults of [Options].
const (
	DefaultMaxClockSkew  = 2 * time.Second
	DefaultShutdownGrace = 30 * time.Second
	DefaultCallTimeout   = 5 * time.Second
	DefaultClockCheck    = time.Second
	DefaultHeartbeat     = 5 * time.Second
	DefaultShareBeat     = 200 * time.Millisecond
	// MarkMargin is the least margin in a slot mark's retention, for Redis
	// and network latency and timer lateness; a job's margin grows with its
	// catch-up window (see [MarkMarginOf]).
	MarkMargin = 5 * time.Second
	// MarkFloor is how long after its slot every replica keeps a decided
	// slot's mark, whatever its config: MarkRetention's least value, with
	// no skew, jitter or catch-up window. A claim that finds, within it, no
	// mark under a later decided slot records its slot late.
	MarkFloor = OnTime + MarkMargin
	// OnTime is the least catch-up window: a slot less than OnTime old is
	// fired as on time even when the job's catchup_window is shorter (0).
	OnTime = time.Second
)

// Options configure a Scheduler. The zero value works: every field has a
// default.
type Options struct {
	// Replica names this replica in logs, records and jobs.Run; default
	// "<hostname>-<pid>".
	Replica string
	// Clock is the single source of time; default RealClock(). Use
	// OffsetClock for REDCRON_CLOCK_OFFSET.
	Clock Clock
	// Logger receives one line per run and per skipped slot, with
	// structured fields; default (nil): JSON lines on stderr, with
	// timestamps, at info level, redacted with Secrets. A Logger given
	// here is written as it is: put Secrets.JSONWriter under it.
	Logger *zerolog.Logger
	// Prefix starts every Redis key: "<prefix>:{<job>}:..."; default
	// store.DefaultPrefix ("redcron"). FromConfig takes it from the file.
	Prefix string
	// MaxClockSkew is the largest offset to Redis's clock a replica may
	// have and still claim; it also sizes the slot marks. Default 2s.
	// FromConfig takes it from the file.
	MaxClockSkew time.Duration
	// ShutdownGrace is how long Run waits, after its context ends, for
	// running jobs before cancelling them with ErrShutdown, and within
	// which it writes the skip records that come due (so Run may take it
	// whole, and CallTimeout more, with no job running). Default 30s.
	// FromConfig takes it from the file.
	ShutdownGrace time.Duration
	// Registerer, when not nil, gets the scheduler's Prometheus metrics
	// (redcron_runs_total, redcron_skipped_slots_total,
	// redcron_claim_errors_total, redcron_fire_lag_seconds); schedulers
	// sharing a registry share the collectors.
	Registerer prometheus.Registerer
	// CallTimeout bounds recording a run once the shutdown grace is over
	// (until then Finish is retried while the run's mark lasts); default 5s.
	CallTimeout time.Duration
	// ClockCheck is how often the replica measures its clock against
	// Redis's TIME (and at once when a claim is refused as early); a
	// replica off by more than MaxClockSkew claims nothing. Default 1s.
	ClockCheck time.Duration
	// Version is this replica's version, in its registration; default "dev".
	Version string
	// HTTP is the address this replica serves its status on, in its
	// registration (for redcron replicas); default none.
	HTTP string
	// Heartbeat is how often the replica renews its registration in Redis
	// (which expires after three) and checks the live replicas for config
	// drift. Default 5s.
	Heartbeat time.Duration
	// ShareBeat is how often the replica tells the others, through Redis,
	// that it is live, for work sharing: each firing is claimed by one
	// replica, chosen by rendezvous hashing among the live ones, and
	// another steps in three beats after the slot if that one did not beat
	// since. Default 200ms; negative turns sharing off (every replica
	// claims every firing).
	ShareBeat time.Duration
	// Wrappers are added around every job's run, outermost first, inside
	// the scheduler's own (timeout, then retries; panics are always
	// recovered): e.g. a tracing or metrics wrapper. Default none.
	Wrappers []Wrapper

	// Notify tunes how notifications are sent (queue, attempts, backoff);
	// its zero value holds notify's defaults. Its Logger and Registerer are
	// the scheduler's.
	Notify notify.Options

	// Secrets are shown redacted (as the ${VAR} they came from) in what
	// the scheduler writes: the error and output of records, notification
	// bodies, its own "run" log line, and the status API built by
	// statusapi.ForScheduler, and the default Logger's lines. FromConfig
	// adds the config's Secrets to them (or uses the config's when nil).
	// Default none.
	Secrets *jobs.Secrets

	// RedisURL (FromConfig only) replaces the file's redis: block, as the
	// --redis flag does. Conn (FromConfig only) is a connection the caller
	// dialed and owns; FromConfig then neither dials nor closes one.
	RedisURL string
	Conn     *redisconn.Conn
}

// clusterDefaults fills the settings every replica must share (prefix,
// clock skew, grace) with their defaults.
func (o Options) clusterDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = store.DefaultPrefix
	}
	if o.MaxClockSkew <= 0 {
		o.MaxClockSkew = DefaultMaxClockSkew
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	return o
}

// withDefaults fills every zero field with its default.
func (o Options) withDefaults() Options {
	if o.Replica == "" {
		host, _ := os.Hostname()
		o.Replica = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if o.Clock == nil {
		o.Clock = RealClock()
	}
	if o.Logger == nil {
		l := zerolog.New(o.Secrets.JSONWriter(os.Stderr)).With().Timestamp().Logger().Level(zerolog.InfoLevel)
		o.Logger = &l
	}
	o = o.clusterDefaults()
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.ClockCheck <= 0 {
		o.ClockCheck = DefaultClockCheck
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.ShareBeat == 0 {
		o.ShareBeat = DefaultShareBeat
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	return o
}

package locker

import (
	"time"

	"github.com/rs/zerolog"
)

// Default option values.
const (
	// DefaultNodeTimeout bounds each call to each node.
	DefaultNodeTimeout = 500 * time.Millisecond
	// DefaultRetryDelay is the maximum random delay between Obtain retries.
	DefaultRetryDelay = 50 * time.Millisecond
)

// Options tune a Locker. The zero value is ready to use.
type Options struct {
	// Drift is the clock drift allowance subtracted from every lease's TTL
	// to get its local deadline (and, in quorum mode, its validity).
	// Default (zero): TTL/100 + 2ms, the Redlock value, computed per lease.
	Drift time.Duration
	// NodeTimeout bounds every call to every node. A renewal's call is also
	// bounded by the time left to the lease's local deadline. Default 500ms.
	NodeTimeout time.Duration
	// Retries is how many times Obtain retries after ErrNotObtained or
	// ErrNoQuorum, after a random delay in [0, RetryDelay). It never retries
	// after ErrSlotClaimed, ErrPaused, or after writing a BusyRecord.
	// Default 0.
	Retries int
	// RetryDelay is the maximum random delay between retries. Default 50ms.
	RetryDelay time.Duration
	// Logger receives lease losses and renewal failures, with structured
	// fields. Default: disabled (the zero zerolog.Logger writes nothing).
	Logger zerolog.Logger
	// MinReplicasAck, when positive, makes a claim wait until this many
	// replicas of the node acknowledged it (WAIT, on the claim's own
	// connection) before Obtain returns, so that a failover to a replica
	// cannot forget a claim whose run started. A claim that won but was
	// not acknowledged within AckTimeout fails with ErrNotAcked: its lease
	// key is released at once (so that the job's next slots do not find it
	// busy) and its mark kept; it may have won, so retry the Bid as itself
	// (it takes the lease again) or withdraw it. One node only
	// (New with a standalone or Sentinel client; not a Cluster client,
	// not NewQuorum with several). Default 0: off.
	MinReplicasAck int
	// AckTimeout bounds that wait (WAIT's timeout); a claim's call may
	// then take NodeTimeout + AckTimeout. Default 500ms.
	AckTimeout time.Duration
	// Unbatched sends every script call as an EVALSHA of its own. By
	// default, with a *redis.Client, the calls that a node's lane sends
	// together go as one call of batch.lua, which touches the keys of
	// many jobs: set Unbatched when the address is a proxy in front of
	// several servers that routes a script by its first key (Envoy,
	// twemproxy). A server or proxy that refuses such a call (CROSSSLOT)
	// turns batching off by itself. Cluster clients never batch.
	Unbatched bool
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = DefaultNodeTimeout
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = DefaultRetryDelay
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.MinReplicasAck < 0 {
		o.MinReplicasAck = 0
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	return o
}

// drift is the allowance for a lease of length ttl.
func (o *Options) drift(ttl time.Duration) time.Duration {
	if o.Drift > 0 {
		return o.Drift
	}
	return ttl/100 + 2*time.Millisecond
}

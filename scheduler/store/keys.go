package store

import (
	"strconv"
	"strings"
	"time"
)

// DefaultPrefix starts every key unless the config says otherwise.
const DefaultPrefix = "redcron"

// Keys are the Redis keys of one job (see the package's key table).
type Keys struct {
	Job string
	// all holds the job's fixed keys back to back, built once (a replica
	// builds claims for thousands of firings a second) in one string (a
	// replica holds 100,000 jobs' keys): meta, lease, history, running,
	// paused, ring, each the prefix "P:{J}:" and its name. The prefix is all's
	// first np bytes.
	all string
	np  int
}

// fixedKeys are the names of the keys in Keys.all, in order.
var fixedKeys = [...]string{"meta", "lease", "history", "running", "paused", "ring"}

// JobKeys returns the keys of job under prefix ("" means DefaultPrefix).
func JobKeys(prefix, job string) Keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	np := len(prefix) + len(":{") + len(job) + len("}:")
	var b strings.Builder
	b.Grow(len(fixedKeys)*np + len("meta"+"lease"+"history"+"running"+"paused"+"ring"))
	for _, name := range fixedKeys {
		b.WriteString(prefix)
		b.WriteString(":{")
		b.WriteString(job)
		b.WriteString("}:")
		b.WriteString(name)
	}
	return Keys{Job: job, all: b.String(), np: np}
}

// fixed is the i-th key of all (fixedKeys' order).
func (k Keys) fixed(i int) string {
	at := i * k.np
	for _, name := range fixedKeys[:i] {
		at += len(name)
	}
	return k.all[at : at+k.np+len(fixedKeys[i])]
}

// prefix is "P:{J}:".
func (k Keys) prefix() string { return k.all[:k.np] }

// Meta is the job's hash: fence counter, high-water slot, first sight.
func (k Keys) Meta() string { return k.fixed(0) }

// Lease is the job's lease key (overlap forbid and replace).
func (k Keys) Lease() string { return k.fixed(1) }

// SlotLease is the lease key of one slot (overlap allow).
func (k Keys) SlotLease(slot time.Time) string { return k.Lease() + ":" + unix(slot) }

// ManualLease is the lease key of one manual run (overlap allow).
func (k Keys) ManualLease(id int64) string {
	return k.Lease() + ":manual:" + strconv.FormatInt(id, 10)
}

// Next is the successor key of overlap replace.
func (k Keys) Next() string { return k.prefix() + "next" }

// Mark is the slot's mark.
func (k Keys) Mark(slot time.Time) string { return k.prefix() + "slot:" + unix(slot) }

// ManualMark is the mark of one manual run, id its trigger instant in Unix
// nanoseconds: never a slot's mark.
func (k Keys) ManualMark(id int64) string {
	return k.prefix() + "manual:" + strconv.FormatInt(id, 10)
}

// History is the job's final records, a sorted set scored by slot (ms).
func (k Keys) History() string { return k.fixed(2) }

// Running is the job's index of running runs: their mark keys, scored by
// lease expiry (ms).
func (k Keys) Running() string { return k.fixed(3) }

// Paused is the job's pause key: present means paused.
func (k Keys) Paused() string { return k.fixed(4) }

// Ring is the job's ring of decided slots: a bit per second, set once a
// slot is claimed or recorded (see locker.Claim.RingKey).
func (k Keys) Ring() string { return k.fixed(5) }

// Events is the job's pub/sub channel.
func (k Keys) Events() string { return k.prefix() + "events" }

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

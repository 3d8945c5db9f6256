package store

import (
	"strconv"
	"time"
)

// DefaultPrefix starts every key unless the config says otherwise.
const DefaultPrefix = "redcron"

// Keys are the Redis keys of one job (see the package's key table).
type Keys struct {
	Job    string
	prefix string // "P:{J}:"
	// The job's fixed keys, built once: a replica builds claims for
	// thousands of firings a second.
	meta, lease, history, running, paused string
}

// JobKeys returns the keys of job under prefix ("" means DefaultPrefix).
func JobKeys(prefix, job string) Keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	p := prefix + ":{" + job + "}:"
	return Keys{Job: job, prefix: p, meta: p + "meta", lease: p + "lease", history: p + "history",
		running: p + "running", paused: p + "paused"}
}

// Meta is the job's hash: fence counter, high-water slot, first sight.
func (k Keys) Meta() string { return k.meta }

// Lease is the job's lease key (overlap forbid and replace).
func (k Keys) Lease() string { return k.lease }

// SlotLease is the lease key of one slot (overlap allow).
func (k Keys) SlotLease(slot time.Time) string { return k.Lease() + ":" + unix(slot) }

// ManualLease is the lease key of one manual run (overlap allow).
func (k Keys) ManualLease(id int64) string {
	return k.Lease() + ":manual:" + strconv.FormatInt(id, 10)
}

// Next is the successor key of overlap replace.
func (k Keys) Next() string { return k.prefix + "next" }

// Mark is the slot's mark.
func (k Keys) Mark(slot time.Time) string { return k.prefix + "slot:" + unix(slot) }

// ManualMark is the mark of one manual run, id its trigger instant in Unix
// nanoseconds: never a slot's mark.
func (k Keys) ManualMark(id int64) string {
	return k.prefix + "manual:" + strconv.FormatInt(id, 10)
}

// History is the job's final records, a sorted set scored by slot (ms).
func (k Keys) History() string { return k.history }

// Running is the job's index of running runs: their mark keys, scored by
// lease expiry (ms).
func (k Keys) Running() string { return k.running }

// Paused is the job's pause key: present means paused.
func (k Keys) Paused() string { return k.paused }

// Events is the job's pub/sub channel.
func (k Keys) Events() string { return k.prefix + "events" }

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// Package scheduler is redcron's cron loop: it computes each job's slots
// (epoch-anchored @every, time zones, Vixie cron's daylight-saving rule),
// claims every (job, slot) in Redis through a [Locker] before running it, and
// enforces overlap, catch-up, retries, timeouts and graceful shutdown.
//
// Time comes from one injected [Clock], so that tests never sleep for timing
// logic and REDCRON_CLOCK_OFFSET ([OffsetClock]) shifts every read and timer of
// a replica at once.
package scheduler

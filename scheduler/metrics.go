package scheduler

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Skip reasons, the "reason" label of redcron_skipped_slots_total and the
// "reason" field of the warn log of a skipped slot.
const (
	SkipOverlap = "overlap" // overlap forbid: the job was still running (anywhere)
	SkipPaused  = "paused"  // the job is paused in Redis
	SkipOutage  = "outage"  // no claim could be made (Redis unreachable) within the catch-up window
	SkipLate    = "late"    // this replica woke after the slot's catch-up window (pause, late timer, outage)
)

// Run outcomes, the "outcome" label of redcron_runs_total and the outcome of
// a run's record and log.
const (
	OutcomeOK        = "ok"
	OutcomeError     = "error"
	OutcomePanic     = "panic"
	OutcomeTimeout   = "timeout"
	OutcomeLeaseLost = "lease_lost"
	OutcomeShutdown  = "shutdown"
	OutcomeCanceled  = "canceled"
)

type metrics struct {
	runs        *prometheus.CounterVec
	skips       *prometheus.CounterVec
	claimErrors *prometheus.CounterVec
	fireLag     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redcron_runs_total", Help: "Runs started by this replica, by job and outcome.",
		}, []string{"job", "outcome"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redcron_skipped_slots_total", Help: "Slots skipped, by job and reason (overlap, paused, outage, late).",
		}, []string{"job", "reason"}),
		claimErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redcron_claim_errors_total", Help: "Claims that failed with an I/O error (Redis unreachable), by job.",
		}, []string{"job"}),
		fireLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "redcron_fire_lag_seconds", Help: "Time from a slot's nominal instant to the start of its run (after jitter and claim).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
	if reg != nil {
		m.runs = register(reg, m.runs)
		m.skips = register(reg, m.skips)
		m.claimErrors = register(reg, m.claimErrors)
		m.fireLag = register(reg, m.fireLag)
	}
	return m
}

// register registers c on reg, or returns the collector already there (so
// several schedulers in one process can share a registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

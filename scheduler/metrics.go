package scheduler

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	runs        *prometheus.CounterVec
	skips       *prometheus.CounterVec
	claimErrors *prometheus.CounterVec
	fireLag     prometheus.Histogram
	clockOffset prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redcron_runs_total", Help: "Runs started by this replica, by job and outcome.",
		}, []string{"job", "outcome"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redcron_skipped_slots_total", Help: "Slots whose skip this replica recorded, by job and reason (paused, overlap, outage, late, aborted, clock).",
		}, []string{"job", "reason"}),
		claimErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redcron_claim_errors_total", Help: "Claims that failed with an I/O error (Redis unreachable), by job.",
		}, []string{"job"}),
		fireLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "redcron_fire_lag_seconds", Help: "Time from a slot's nominal instant to the start of its run (after jitter and claim).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		clockOffset: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redcron_clock_offset_seconds", Help: "Redis's clock minus this replica's, as last measured (TIME, corrected for the round trip).",
		}),
	}
	if reg != nil {
		m.runs = register(reg, m.runs)
		m.skips = register(reg, m.skips)
		m.claimErrors = register(reg, m.claimErrors)
		m.fireLag = register(reg, m.fireLag)
		m.clockOffset = register(reg, m.clockOffset)
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

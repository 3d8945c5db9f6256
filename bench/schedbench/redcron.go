package main

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/logqueue"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler"
	"github.com/redcron/redcron/scheduler/redisconn"
)

// funcName is the Go job function every generated job is bound to.
const funcName = "schedbench.record"

// ledgerOf is the child's recorder, which the job functions write to.
var ledgerOf atomic.Pointer[recorder]

func init() {
	jobs.Register(funcName, func(_ context.Context, r jobs.Run, _ struct{}) error {
		start := time.Now()
		if rec := ledgerOf.Load(); rec != nil {
			rec.add(r.Job, r.Slot, r.Fence, start)
		}
		return nil
	})
}

// redcronReplica is one stock replica, built as cmd/redcron builds it:
// jobs.Load, a connection dialed from the file's redis: block, FromConfig
// with a Prometheus registry, the decoding's garbage handed back. It logs
// at warn level (skips and claim failures) into a counter: a stock replica
// also logs two info lines per run, which at thousands of runs a second an
// operator turns off.
type redcronReplica struct {
	cancel context.CancelFunc
	done   chan error
	conn   *redisconn.Conn
	log    *logqueue.Writer // the info-level log's queue, if any
	file   *os.File         // and its file
}

func startRedcron(spec childSpec, cfg *jobs.Config, logs *countWriter, counter *counter) (*redcronReplica, error) {
	// As cmd/redcron does once the file is decoded: collect its node tree
	// before the scheduler is built.
	runtime.GC()
	conn, err := redisconn.Dial(cfg.Redis, "", locker.Options{})
	if err != nil {
		return nil, err
	}
	for _, c := range conn.Clients {
		c.AddHook(counter)
	}
	logger := zerolog.New(logs).Level(zerolog.WarnLevel)
	var (
		logQueue *logqueue.Writer
		logFile  *os.File
	)
	if spec.InfoLog != "" {
		// As `redcron run --log-level info` (its default) writes to a
		// file: every line, with its time, through a logqueue; the
		// warn-level lines also go to logs, to be counted.
		if logFile, err = os.Create(spec.InfoLog); err != nil {
			_ = conn.Close()
			return nil, err
		}
		logQueue = logqueue.New(logFile)
		w := zerolog.MultiLevelWriter(logQueue, &zerolog.FilteredLevelWriter{Writer: zerolog.LevelWriterAdapter{Writer: logs}, Level: zerolog.WarnLevel})
		logger = zerolog.New(w).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	}
	s, err := scheduler.FromConfig(cfg, scheduler.Options{
		Replica:    replicaName(spec.Replica),
		Clock:      scheduler.OffsetClock(scheduler.RealClock(), spec.Offset),
		Logger:     &logger,
		Registerer: prometheus.NewRegistry(),
		Conn:       conn,
		Version:    "schedbench",
	})
	if err != nil {
		_ = conn.Close()
		if logFile != nil {
			_ = logQueue.Close()
			_ = logFile.Close()
		}
		return nil, err
	}
	// As cmd/redcron does once built: hand the build's garbage back.
	debug.FreeOSMemory()
	ctx, cancel := context.WithCancel(context.Background())
	r := &redcronReplica{cancel: cancel, done: make(chan error, 1), conn: conn, log: logQueue, file: logFile}
	go func() { r.done <- s.Run(ctx) }()
	return r, nil
}

// stop ends Run (a graceful shutdown: the bench's runs return at once) and
// closes the connection.
func (r *redcronReplica) stop() error {
	r.cancel()
	err := <-r.done
	if cerr := r.conn.Close(); err == nil {
		err = cerr
	}
	if r.log != nil {
		if cerr := r.log.Close(); err == nil {
			err = cerr
		}
		if cerr := r.file.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/logqueue"
)

// newLogger writes zerolog JSON to w, or a human console format when w is a
// terminal, at the given level. Every line, at every level, is redacted
// with the Secrets of w (see withSecrets) before it is written: in JSON,
// inside its strings, so that it stays one valid JSON object. A w that
// queues its lines (see queueLines) is a terminal when what it writes to is.
func newLogger(w io.Writer, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	w, sec := unwrap(w)
	dest := w
	if q, ok := w.(*logqueue.Writer); ok {
		dest = q.Dest()
	}
	if f, ok := dest.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly} // through the queue, if any
		}
	}
	if sec != nil {
		w = sec.JSONWriter(w) // under the console writer, which reads JSON
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// queueLines is w (a withSecrets writer, or not) with its lines written
// through a logqueue: off the path of the runs that log them, in the order
// written, whether logged or printed. The returned func writes what is
// queued and stops the queue.
func queueLines(w io.Writer) (io.Writer, func() error) {
	inner, sec := unwrap(w)
	q := logqueue.New(inner)
	if sec != nil {
		return withSecrets(q, sec), q.Close
	}
	return q, q.Close
}

// redisLog routes go-redis's own messages (failed dials, pool events) into
// the structured log at debug, so stderr stays one JSON object per line;
// the scheduler logs and counts the failures that matter (claim errors).
type redisLog struct{ log zerolog.Logger }

// Printf implements go-redis's internal.Logging.
func (r redisLog) Printf(_ context.Context, format string, v ...any) {
	r.log.Debug().Str("component", "go-redis").Msg(fmt.Sprintf(format, v...))
}

package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redcron/redcron/scheduler"
)

// clockFromEnv is this replica's clock: the real one, shifted by
// REDCRON_CLOCK_OFFSET (a Go duration) or by the duration written in the
// file REDCRON_CLOCK_OFFSET_FILE names, re-read as the file changes, so a
// test can step a running replica's clock. Both are for fault-injection
// tests only.
func clockFromEnv() (clk scheduler.Clock, offset string, err error) {
	clk = scheduler.RealClock()
	if s := os.Getenv("REDCRON_CLOCK_OFFSET"); s != "" {
		off, err := time.ParseDuration(s)
		if err != nil {
			return nil, "", fmt.Errorf("REDCRON_CLOCK_OFFSET=%q: %w", s, err)
		}
		return scheduler.OffsetClock(clk, off), s, nil
	}
	if path := os.Getenv("REDCRON_CLOCK_OFFSET_FILE"); path != "" {
		c := &fileOffsetClock{path: path}
		if err := c.load(); err != nil {
			return nil, "", fmt.Errorf("REDCRON_CLOCK_OFFSET_FILE: %w", err)
		}
		return c, "from " + path, nil
	}
	return clk, "", nil
}

// fileOffsetClock is the real clock plus the duration in a file, re-read
// at most every fileOffsetReload (on Now); a file that cannot be read or
// parsed leaves the offset as it was.
type fileOffsetClock struct {
	path   string
	off    atomic.Int64 // nanoseconds
	mu     sync.Mutex   // one reload at a time
	loaded time.Time    // monotonic; under mu
}

const fileOffsetReload = 100 * time.Millisecond

func (c *fileOffsetClock) load() error {
	b, err := os.ReadFile(c.path)
	if err != nil {
		return err
	}
	d, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	c.off.Store(int64(d))
	return nil
}

// Now is the real time plus the file's offset.
func (c *fileOffsetClock) Now() time.Time {
	now := time.Now()
	if c.mu.TryLock() {
		if now.Sub(c.loaded) >= fileOffsetReload {
			_ = c.load()
			c.loaded = now
		}
		c.mu.Unlock()
	}
	return now.Add(time.Duration(c.off.Load()))
}

// NewTimer is the real clock's: the scheduler computes every timer as
// target - Now(), so the offset applies to timers too.
func (c *fileOffsetClock) NewTimer(d time.Duration) scheduler.Timer {
	return scheduler.RealClock().NewTimer(d)
}

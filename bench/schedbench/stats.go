package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// rtCounter is a go-redis hook that counts round trips (one per command
// outside a pipeline, one per pipeline) and classifies EVALSHA/EVAL calls
// of the locker's scripts by their key count: 4 keys = obtain (claim),
// 3 = finish, others (renew, release) = other.
type rtCounter struct {
	mu                        sync.Mutex
	roundTrips, cmds          int64
	claims, finishes, scripts int64
	byName                    map[string]int64
}

func newRTCounter() *rtCounter { return &rtCounter{byName: map[string]int64{}} }

func (c *rtCounter) count(cmd redis.Cmder) {
	name := strings.ToLower(cmd.Name())
	c.cmds++
	c.byName[name]++
	if name == "evalsha" || name == "eval" {
		c.scripts++
		if args := cmd.Args(); len(args) > 2 {
			switch fmt.Sprint(args[2]) {
			case "4":
				c.claims++
			case "3":
				c.finishes++
			}
		}
	}
}

func (c *rtCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *rtCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.mu.Lock()
		c.roundTrips++
		c.count(cmd)
		c.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (c *rtCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.mu.Lock()
		c.roundTrips++
		for _, cmd := range cmds {
			c.count(cmd)
		}
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

type rtSnap struct{ roundTrips, cmds, claims, finishes, scripts int64 }

func (c *rtCounter) snap() rtSnap {
	c.mu.Lock()
	defer c.mu.Unlock()
	return rtSnap{c.roundTrips, c.cmds, c.claims, c.finishes, c.scripts}
}

func (a rtSnap) sub(b rtSnap) rtSnap {
	return rtSnap{a.roundTrips - b.roundTrips, a.cmds - b.cmds, a.claims - b.claims, a.finishes - b.finishes, a.scripts - b.scripts}
}

// serverSnap is what INFO tells about the server: calls per command
// (commandstats, which also counts commands that scripts call) and CPU.
type serverSnap struct {
	calls map[string]int64
	cpu   time.Duration // used_cpu_user + used_cpu_sys
}

func serverInfo(ctx context.Context, c *redis.Client) (serverSnap, error) {
	s := serverSnap{calls: map[string]int64{}}
	txt, err := c.Info(ctx, "commandstats", "cpu").Result()
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(txt, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "cmdstat_"); ok {
			name, fields, _ := strings.Cut(rest, ":")
			for _, f := range strings.Split(fields, ",") {
				if v, ok := strings.CutPrefix(f, "calls="); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					s.calls[name] = n
				}
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			s.cpu += time.Duration(f * float64(time.Second))
		}
	}
	return s, nil
}

func (a serverSnap) sub(b serverSnap) serverSnap {
	d := serverSnap{calls: map[string]int64{}, cpu: a.cpu - b.cpu}
	for k, v := range a.calls {
		d.calls[k] = v - b.calls[k]
	}
	return d
}

// processCPU is this process's user + system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

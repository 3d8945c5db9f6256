package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
)

// The breakdown measures where Redis's time goes on the scheduler's claim
// path (one claim and one finish per firing, as slotClaimOps), on its own
// redis-server, from INFO commandstats (whose EVALSHA time includes the
// commands the script calls, which are also counted on their own) and the
// main thread's CPU. Two stand-in scripts, sent with the very keys and
// arguments the locker sent, split the script machinery: one returns at
// once (EVALSHA's own cost with these arguments), one runs locker's
// prelude.lua first (its parsing of the named arguments). The rest of the
// time inside EVALSHA is the scripts' Lua and redis.call's own work around
// each command.

// breakdownSample is one repetition's figures, in microseconds per firing.
type breakdownSample struct {
	cpu     float64            // main-thread CPU, claim path
	evalsha float64            // inside EVALSHA, claim path
	inner   float64            // the commands the scripts called
	calls   float64            // how many
	byCmd   map[string]cmdStat // per command: calls and us per firing
	base    float64            // EVALSHA of a script that returns at once
	prelude float64            // EVALSHA of prelude.lua, then return
	floor   float64            // main-thread CPU of the floor's cycle
}

// cmdStat is one command's line of INFO commandstats.
type cmdStat struct{ calls, usec float64 }

// notInner are the commands a client sends itself, not a script (with
// their subcommands: "config|resetstat").
var notInner = []string{"evalsha", "eval", "info", "config", "hello", "ping", "script", "client", "flushall", "select"}

// breakdown runs cfg.reps repetitions of the claim path, the two stand-in
// scripts and the batched floor, each for cfg.duration at 32 goroutines, and
// prints the figures.
func breakdown(ctx context.Context, cfg config) error {
	prelude, err := readPrelude()
	if err != nil {
		return err
	}
	s, err := redistest.StartServer(redistest.Options{})
	if err != nil {
		return err
	}
	defer s.Stop()
	c := newClient(s.Addr())
	defer c.Close()
	tap := &argsTap{}
	c.AddHook(tap)
	l, err := locker.New(c, locker.Options{})
	if err != nil {
		return err
	}
	if err := loadScripts(ctx, c); err != nil {
		return err
	}
	sj := newSlotJobs("breakdown")
	claimPath := slotClaimOps(slotName, l, sj)
	// One firing alone, so that its claim and finish are the first two
	// EVALSHAs the tap sees, then the stand-ins for them.
	if err := claimPath.cycle(ctx, "tap"); err != nil {
		return err
	}
	lines := tap.lines()
	if len(lines) < 2 {
		return fmt.Errorf("breakdown: saw %d EVALSHA lines of a firing, want 2", len(lines))
	}
	bare := redis.NewScript("return 1")
	parsed := redis.NewScript(prelude + "\nload_call(1, 1, #ARGV)\nreturn 1")
	for _, sc := range []*redis.Script{bare, parsed} {
		if err := sc.Load(ctx, c).Err(); err != nil {
			return err
		}
	}
	standIn := func(sc *redis.Script) func(context.Context, string) error {
		return func(ctx context.Context, _ string) error {
			for _, line := range lines[:2] {
				args := append([]any{"evalsha", sc.Hash()}, line[2:]...)
				if err := c.Do(ctx, args...).Err(); err != nil {
					return err
				}
			}
			return nil
		}
	}
	// The floor through the same automatic pipelining as the locker, so
	// that both pay for reading and answering commands alike.
	floor := floorOps(batchedFloorName, (&autoPipe{client: c}).do)

	const conc = 32
	var samples []breakdownSample
	for rep := range cfg.reps {
		fmt.Fprintf(os.Stderr, "lockbench: breakdown, repetition %d of %d\n", rep+1, cfg.reps)
		var b breakdownSample
		steps := []func() error{
			func() error {
				st, cpu, err := measureStats(ctx, c, cfg.duration, conc, fmt.Sprintf("claim:%d", rep), claimPath.cycle)
				if err != nil {
					return err
				}
				b.cpu, b.evalsha, b.byCmd = cpu, st["evalsha"].usec, map[string]cmdStat{}
				for name, x := range st {
					if cmd, _, _ := strings.Cut(name, "|"); !slices.Contains(notInner, cmd) {
						b.inner += x.usec
						b.calls += x.calls
						b.byCmd[name] = x
					}
				}
				return nil
			},
			func() error {
				st, _, err := measureStats(ctx, c, cfg.duration, conc, "", standIn(bare))
				b.base = st["evalsha"].usec
				return err
			},
			func() error {
				st, _, err := measureStats(ctx, c, cfg.duration, conc, "", standIn(parsed))
				b.prelude = st["evalsha"].usec
				return err
			},
			func() error {
				_, cpu, err := measureStats(ctx, c, cfg.duration, conc, fmt.Sprintf("floor:%d", rep), floor.cycle)
				b.floor = cpu
				return err
			},
		}
		for i := range steps { // rotate the order, as interleave does
			if err := steps[(i+rep)%len(steps)](); err != nil {
				return fmt.Errorf("breakdown: %w", err)
			}
		}
		samples = append(samples, b)
		if err := c.FlushAll(ctx).Err(); err != nil {
			return err
		}
	}
	printBreakdown(samples)
	return nil
}

// measureStats resets the server's command statistics, runs cycle as
// measure does and returns each command's calls and time per cycle and
// the main thread's CPU per cycle (us).
func measureStats(ctx context.Context, c *redis.Client, d time.Duration, conc int, prefix string, cycle func(context.Context, string) error) (map[string]cmdStat, float64, error) {
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		return nil, 0, err
	}
	cpu0, err := mainThreadCPU(ctx, c)
	if err != nil {
		return nil, 0, err
	}
	n, _, err := measure(ctx, d, conc, prefix, cycle)
	if err != nil {
		return nil, 0, err
	}
	if n == 0 {
		return nil, 0, errors.New("no cycle completed")
	}
	cpu1, err := mainThreadCPU(ctx, c)
	if err != nil {
		return nil, 0, err
	}
	txt, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, 0, err
	}
	per := map[string]cmdStat{}
	for _, line := range strings.Split(txt, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !ok || !found {
			continue
		}
		var x cmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			f, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "calls":
				x.calls = f / float64(n)
			case "usec":
				x.usec = f / float64(n)
			}
		}
		per[name] = x
	}
	return per, float64((cpu1 - cpu0).Microseconds()) / float64(n), nil
}

// mainThreadCPU is the server's main thread's CPU time so far.
func mainThreadCPU(ctx context.Context, c *redis.Client) (time.Duration, error) {
	return infoCPU(ctx, c, "used_cpu_user_main_thread", "used_cpu_sys_main_thread")
}

// readPrelude reads locker/prelude.lua from the source tree: lockbench
// runs from the repository (go run), and locker does not export it.
func readPrelude() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("breakdown: cannot find the source tree")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "locker", "prelude.lua"))
	if err != nil {
		return "", fmt.Errorf("breakdown: read locker's prelude (run from the repository): %w", err)
	}
	return string(b), nil
}

// argsTap keeps the first EVALSHA lines the client sends, alone or in a
// pipeline.
type argsTap struct {
	mu   sync.Mutex
	seen [][]any
}

func (t *argsTap) keep(cmd redis.Cmder) {
	if cmd.Name() != "evalsha" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.seen) < 2 {
		t.seen = append(t.seen, slices.Clone(cmd.Args()))
	}
}

func (t *argsTap) lines() [][]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seen
}

func (t *argsTap) DialHook(next redis.DialHook) redis.DialHook { return next }

func (t *argsTap) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		t.keep(cmd)
		return next(ctx, cmd)
	}
}

func (t *argsTap) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			t.keep(cmd)
		}
		return next(ctx, cmds)
	}
}

// printBreakdown prints the parts as median [min-max] over the samples.
func printBreakdown(samples []breakdownSample) {
	cell := func(f func(breakdownSample) float64) string {
		xs := make([]float64, len(samples))
		for i, s := range samples {
			xs[i] = f(s)
		}
		lo, med, hi := stats(xs)
		return fmt.Sprintf("%.1f [%.1f-%.1f]", med, lo, hi)
	}
	fmt.Printf("\n## Where Redis's time goes on the claim path (x32, its own redis-server; one firing = one claim and one finish; us per firing, median [min-max] of %d reps)\n\n", len(samples))
	fmt.Println("| part | us per firing |")
	fmt.Println("| --- | ---: |")
	rows := []struct {
		label string
		f     func(breakdownSample) float64
	}{
		{"Redis main-thread CPU, all of it", func(s breakdownSample) float64 { return s.cpu }},
		{"outside the scripts: reading, parsing and answering the commands, the event loop", func(s breakdownSample) float64 { return s.cpu - s.evalsha }},
		{"inside EVALSHA, all of it", func(s breakdownSample) float64 { return s.evalsha }},
		{"- the commands the scripts call", func(s breakdownSample) float64 { return s.inner }},
		{"- EVALSHA itself with these keys and arguments (a script that returns at once)", func(s breakdownSample) float64 { return s.base }},
		{"- prelude.lua's parsing of the named arguments", func(s breakdownSample) float64 { return s.prelude - s.base }},
		{"- the rest: the scripts' Lua and redis.call's work around each command", func(s breakdownSample) float64 { return s.evalsha - s.inner - s.prelude }},
		{"the batched floor's cycle (SET NX PX + EVALSHA del), main-thread CPU", func(s breakdownSample) float64 { return s.floor }},
	}
	for _, r := range rows {
		fmt.Printf("| %s | %s |\n", r.label, cell(r.f))
	}
	fmt.Printf("\nThe scripts call %s commands per firing; the rest is %s us per call.\n\n",
		cell(func(s breakdownSample) float64 { return s.calls }),
		cell(func(s breakdownSample) float64 { return (s.evalsha - s.inner - s.prelude) / s.calls }))
	names := map[string]bool{}
	for _, s := range samples {
		for name := range s.byCmd {
			names[name] = true
		}
	}
	var order []string
	for name := range names {
		order = append(order, name)
	}
	sort.Slice(order, func(i, j int) bool {
		return samples[0].byCmd[order[i]].usec > samples[0].byCmd[order[j]].usec
	})
	fmt.Println("| command inside the scripts | calls per firing | us per firing |")
	fmt.Println("| --- | ---: | ---: |")
	for _, name := range order {
		fmt.Printf("| %s | %s | %s |\n", strings.ToUpper(name),
			cell(func(s breakdownSample) float64 { return s.byCmd[name].calls }),
			cell(func(s breakdownSample) float64 { return s.byCmd[name].usec }))
	}
}

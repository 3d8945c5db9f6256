package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/bench/internal/host"
	"github.com/redcron/redcron/internal/redistest"
)

// Kinds of commands a replica sends, as counted by its hook.
const (
	kindClaim  = "claim"  // redcron: obtain.lua; gocron: redsync's or the keyed SET NX
	kindFinish = "finish" // redcron: finish.lua; gocron + redsync: the unlock EVALSHA (also after a lost lock)
	kindBeat   = "beat"   // redcron: work sharing's liveness beat
	kindClock  = "clock"  // redcron: TIME, the clock check
	kindOther  = "other"  // registrations, trigger polls, renewals, skips, ...
	kindBatch  = "batch"  // redcron: batch.lua, carrying several script calls (see carried)
)

var kinds = []string{kindClaim, kindFinish, kindBeat, kindClock, kindOther, kindBatch}

// counter is a go-redis hook that counts every command a client sends, a
// pipeline's commands one by one: the top-level commands Redis gets from
// this replica (what scripts call inside is not among them).
type counter struct {
	classify func(redis.Cmder) class
	mu       sync.Mutex
	// keys holds each class's key in details and failed, built once: the
	// hook runs in the replica measured, for every command it sends.
	keys  map[class]string
	kinds map[string]int64
	// details counts the commands by kind and what they are (the
	// classifier's detail), failed the ones whose reply was an error other
	// than redis.Nil (timeouts and cut connections included), by the same
	// key.
	details, failed map[string]int64
	// carried counts the script calls that batch.lua calls carried, by
	// kind: each is one claim, finish, ... as if sent alone, while the
	// carrier is one top-level command (kindBatch).
	carried map[string]int64
	scripts int64 // EVALSHA and EVAL, to cross-check with INFO commandstats
}

func newCounter(system string) *counter {
	return &counter{classify: classifier(system), keys: map[class]string{},
		kinds: map[string]int64{}, details: map[string]int64{}, failed: map[string]int64{}, carried: map[string]int64{}}
}

func (c *counter) count(cmds ...redis.Cmder) {
	c.mu.Lock()
	for _, cmd := range cmds {
		cl := c.classify(cmd)
		c.kinds[cl.kind]++
		c.details[c.key(cl)]++
		if cl.kind == kindBatch {
			eachCarried(cmd, func(pc class) {
				c.carried[pc.kind]++
				pc.kind += " in batch"
				c.details[c.key(pc)]++
			})
		}
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			c.scripts++
		}
	}
	c.mu.Unlock()
}

// counted counts the commands of cmds that failed, once their replies are in.
func (c *counter) counted(cmds ...redis.Cmder) {
	c.mu.Lock()
	for _, cmd := range cmds {
		cl := c.classify(cmd)
		if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			c.failed[c.key(cl)]++
			continue
		}
		if cl.kind != kindBatch {
			continue
		}
		// A batch.lua reply holds each carried call's reply or error.
		replies, _ := cmd.(*redis.Cmd).Slice()
		var classes []class // built only when a carried call failed
		for i, r := range replies {
			if _, failed := r.(error); !failed {
				continue
			}
			if classes == nil {
				classes = carriedClasses(cmd)
			}
			if i < len(classes) {
				pc := classes[i]
				pc.kind += " in batch"
				c.failed[c.key(pc)]++
			}
		}
	}
	c.mu.Unlock()
}

// class is what a command is: its kind, its name and, for a script, the
// names of its keys and arguments (see redcronKind).
type class struct {
	kind, name, names string
}

// key is cl's key in details and failed: "kind name", or "kind
// name(names)" with up to 40 bytes of the names. Called with c.mu held.
func (c *counter) key(cl class) string {
	if k, ok := c.keys[cl]; ok {
		return k
	}
	k := cl.kind + " " + cl.name
	if cl.names != "" {
		shown := cl.names
		if len(shown) > 40 {
			shown = shown[:40] + "..."
		}
		k += "(" + shown + ")"
	}
	c.keys[cl] = k
	return k
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(cmd)
		err := next(ctx, cmd)
		c.counted(cmd)
		return err
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.count(cmds...)
		err := next(ctx, cmds)
		c.counted(cmds...)
		return err
	}
}

// counterSnap is a replica's counts and CPU at one instant.
type counterSnap struct {
	At      time.Time
	CPU     time.Duration // this process, user + system
	Kinds   map[string]int64
	Details map[string]int64 // counter.details
	Failed  map[string]int64 // counter.failed
	Carried map[string]int64 // counter.carried
	Scripts int64
}

func (c *counter) snap() counterSnap {
	c.mu.Lock()
	defer c.mu.Unlock()
	return counterSnap{At: time.Now(), CPU: processCPU(), Kinds: maps.Clone(c.kinds),
		Details: maps.Clone(c.details), Failed: maps.Clone(c.failed), Carried: maps.Clone(c.carried), Scripts: c.scripts}
}

// classifier tells a system's commands apart: their kind, and what they
// are within it (a command's name; see redcronKind for redcron's scripts).
func classifier(system string) func(redis.Cmder) class {
	if system == sysRedcron {
		return redcronKind
	}
	return func(cmd redis.Cmder) class {
		switch n := cmd.Name(); n {
		case "set":
			// A claim is SET NX (redsync, gocron's key per second, the
			// floor); a plain SET is the floor's finish.
			for _, a := range cmd.Args()[3:] {
				if a, ok := a.(string); ok && strings.EqualFold(a, "nx") {
					return class{kind: kindClaim, name: n}
				}
			}
			return class{kind: kindFinish, name: n}
		case "evalsha", "eval":
			return class{kind: kindFinish, name: n}
		default:
			return class{kind: kindOther, name: n}
		}
	}
}

// redcronKind classifies by the locker's calling convention (prelude.lua:
// EVALSHA sha nkeys keys... "name,name,..." arg pairs): a claim names the
// pause key (obtain.lua is the only script that reads it); a finish's
// arguments start with token, then record (release.lua's with token, then
// mode). The beat's keys carry the {live} hash tag. A script other than a
// beat is detailed by its argument names, up to 40 bytes of them (a beat's
// first argument is its replica: naming beats by it would give each replica
// a line of its own); any other command by its name.
func redcronKind(cmd redis.Cmder) class {
	name := cmd.Name()
	switch name {
	case "time":
		return class{kind: kindClock, name: name}
	case "evalsha", "eval":
		return redcronLine(name, cmd.Args())
	default:
		return class{kind: kindOther, name: name}
	}
}

// redcronLine classifies a script's command line a, sent as name.
func redcronLine(name string, a []any) class {
	if len(a) < 4 {
		return class{kind: kindOther, name: name}
	}
	n := 0
	switch v := a[2].(type) {
	case int:
		n = v
	case int64:
		n = int(v)
	case string:
		n, _ = strconv.Atoi(v)
	}
	if n < 0 || len(a) < 3+n {
		return class{kind: kindOther, name: name}
	}
	if len(a) > 3+n {
		if _, ok := a[3+n].(int); ok {
			// batch.lua's ARGV[1] is the number of calls it carries, where a
			// script sent alone has the names of its keys.
			return class{kind: kindBatch, name: name}
		}
	}
	return scriptClass(name, a[3:3+n], a[3+n:])
}

// scriptClass classifies one script call, sent as name (alone, or carried
// by batch.lua), by its keys and arguments.
func scriptClass(name string, keys, args []any) class {
	if len(keys) >= 1 {
		if k, _ := keys[0].(string); strings.Contains(k, "{live}") {
			return class{kind: kindBeat, name: name}
		}
	}
	if len(args) == 0 {
		return class{kind: kindOther, name: name}
	}
	names, _ := args[0].(string)
	cl := class{kind: kindOther, name: name, names: names}
	switch {
	case len(args) < 4:
	case strings.Contains(names, "pause"):
		cl.kind = kindClaim
	case args[1] == "token" && args[3] == "record":
		cl.kind = kindFinish
	}
	return cl
}

// eachCarried calls f with the class of each call that a batch.lua
// command carries, as if sent alone, classified in place: the hook runs in
// the replica measured, for every batch it sends.
func eachCarried(cmd redis.Cmder, f func(class)) {
	name := cmd.Name()
	redistest.ScriptCalls(cmd.Args(), func(keys, args []any) {
		f(scriptClass(name, keys, args))
	})
}

// carriedClasses is eachCarried's classes, in order.
func carriedClasses(cmd redis.Cmder) []class {
	var out []class
	eachCarried(cmd, func(cl class) { out = append(out, cl) })
	return out
}

// serverSnap is what INFO says about the server at one instant (summed
// over a cluster's masters).
type serverSnap struct {
	at      time.Time
	calls   map[string]int64 // commandstats: also the commands scripts call
	usec    map[string]int64 // commandstats: microseconds, likewise
	cpu     time.Duration    // used_cpu_user + used_cpu_sys
	cpus    []time.Duration  // cpu of each master (backend.info)
	memory  int64            // used_memory
	keys    int64            // DBSIZE
	evicted int64
}

func serverInfo(ctx context.Context, c *redis.Client) (serverSnap, error) {
	s := serverSnap{at: time.Now(), calls: map[string]int64{}, usec: map[string]int64{}}
	txt, err := c.Info(ctx, "commandstats", "cpu", "memory", "stats").Result()
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(txt, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "cmdstat_"); ok {
			name, fields, _ := strings.Cut(rest, ":")
			for _, f := range strings.Split(fields, ",") {
				if v, ok := strings.CutPrefix(f, "calls="); ok {
					s.calls[name], _ = strconv.ParseInt(v, 10, 64)
				}
				if v, ok := strings.CutPrefix(f, "usec="); ok {
					s.usec[name], _ = strconv.ParseInt(v, 10, 64)
				}
			}
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "used_cpu_user", "used_cpu_sys":
			f, _ := strconv.ParseFloat(v, 64)
			s.cpu += time.Duration(f * float64(time.Second))
		case "used_memory":
			s.memory, _ = strconv.ParseInt(v, 10, 64)
		case "evicted_keys":
			s.evicted, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	s.keys, err = c.DBSize(ctx).Result()
	return s, err
}

// allCalls is the sum of commandstats calls, less the parent's own INFO
// and DBSIZE and the connection handshakes (HELLO, CLIENT SETINFO) and a
// cluster client's slot map reads (CLUSTER SLOTS/SHARDS), which go-redis
// sends outside its hooks.
func (s serverSnap) allCalls() int64 {
	var n int64
	for k, v := range s.calls {
		if k != "info" && k != "dbsize" && k != "hello" && !strings.HasPrefix(k, "client") && !strings.HasPrefix(k, "cluster") {
			n += v
		}
	}
	return n
}

// processCPU is this process's user + system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machine describes the CPUs, memory, Go and redis-server.
func machine() string {
	model, mem := host.CPUModel(), "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			mem = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	rv := "?"
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		rv = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%d CPUs (%s), %s RAM, %s %s/%s, %s", runtime.NumCPU(), model, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH, rv)
}

func replicaName(i int) string { return "r" + strconv.Itoa(i) }

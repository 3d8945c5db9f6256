package main

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/jobs"
)

// childSpec is what the parent asks of one replica (JSON on its stdin).
type childSpec struct {
	System   string
	Replica  int
	Replicas int           // R, the scenario's replica count
	Addr     string        // redis-server's host:port
	Config   string        // the jobs.yaml to load
	Offset   time.Duration // added to this replica's clock
	// From and To are the steady window's slots (Unix seconds, inclusive):
	// only runs of these slots go in the ledger.
	From, To int64
	// Snaps are the instants at which the child takes its counters: the
	// window's start and end, and for a sampled suite every sample
	// between. The CPU profile, if any, covers them.
	Snaps      []time.Time
	Stop       time.Time
	CPUProfile string
	// HeapProfile, if set, is where the child writes a heap profile (in
	// use after a GC) at the window's end.
	HeapProfile string
	// Sampled makes the child read its memory at every snap (Mems), not
	// only at the last, and keep its ledger in a file until it stops, so
	// that the ledger (32 bytes a run) does not grow the heap it samples.
	Sampled bool
	// InfoLog, if set, is where a redcron replica writes its log at info
	// level, as `redcron run` does by default; its warn-level lines are
	// counted (childReport.Logs) all the same.
	InfoLog string
}

// childReport is what one replica hands back (gob on its stdout).
type childReport struct {
	Replica int
	// Built is when the replica had loaded its jobs.yaml and built its
	// scheduler; Parse is how long jobs.Load took, Build the scheduler's
	// construction after it (FromConfig, or gocron's NewJob calls), and
	// BuiltHeap the live heap right after (a forced GC).
	Built        time.Time
	Parse, Build time.Duration
	BuiltHeap    uint64
	Entries      []entry // runs of the window's slots
	Snaps        []counterSnap
	Mem          memSnap   // at the window's end
	Mems         []memSnap // at every snap, when Sampled
	// Logs counts the warn-level lines the scheduler wrote in the window
	// (skips, claim failures); FirstLogs are the first few.
	Logs      int
	FirstLogs []string
	// Recorder are the recorder's lines about skip records it could not
	// write (dropped, or left at shutdown), from the whole run.
	Recorder []string
}

// replica is a running system in a child.
type replica interface {
	stop() error
}

// runChild runs one replica as spec asks and writes its report to out.
func runChild(in io.Reader, out io.Writer) error {
	var spec childSpec
	if err := json.NewDecoder(in).Decode(&spec); err != nil {
		return fmt.Errorf("reading the spec: %w", err)
	}
	rec := &recorder{from: spec.From, to: spec.To, entries: make([]entry, 0, 1024)}
	if spec.Sampled {
		sp, err := newSpool()
		if err != nil {
			return err
		}
		defer sp.remove()
		rec.spool = sp
	}
	ledgerOf.Store(rec) // before jobs.Load resolves the job function
	counter := newCounter(spec.System)
	logs := &countWriter{}
	client := func() *redis.Client {
		// As cmd/redcron's client for a redis:// URL: timeouts of the
		// jobs.yaml defaults, go-redis' own retries off, context timeouts
		// on the socket, the default pool.
		c := redis.NewClient(&redis.Options{Addr: spec.Addr,
			DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
			MaxRetries: -1, ContextTimeoutEnabled: true})
		c.AddHook(counter)
		return c
	}

	rep := childReport{Replica: spec.Replica}
	start := time.Now()
	cfg, err := jobs.Load(spec.Config)
	if err != nil {
		return err
	}
	rep.Parse = time.Since(start)
	var r replica
	switch spec.System {
	case sysRedcron:
		r, err = startRedcron(spec, cfg, logs, counter)
	case sysGocron, sysGocronKeyed:
		r, err = startGocron(spec, cfg, rec, client())
	case sysFloor:
		r, err = startFloor(spec, cfg, rec, client())
	default:
		err = fmt.Errorf("unknown system %q", spec.System)
	}
	if err != nil {
		return err
	}
	rep.Built = time.Now()
	rep.Build = rep.Built.Sub(start) - rep.Parse
	rep.BuiltHeap = liveHeap()

	var prof *os.File
	for i, at := range spec.Snaps {
		time.Sleep(time.Until(at))
		rep.Snaps = append(rep.Snaps, counter.snap())
		logs.counting(i < len(spec.Snaps)-1)
		switch {
		case i == 0 && spec.CPUProfile != "":
			if prof, err = os.Create(spec.CPUProfile); err != nil {
				_ = r.stop()
				return err
			}
			if err := pprof.StartCPUProfile(prof); err != nil {
				_ = r.stop()
				return err
			}
		case i == len(spec.Snaps)-1:
			if prof != nil {
				pprof.StopCPUProfile()
				_ = prof.Close()
			}
			rep.Mem = readMem()
			if spec.HeapProfile != "" {
				if err := writeHeapProfile(spec.HeapProfile); err != nil {
					_ = r.stop()
					return err
				}
			}
		}
		if spec.Sampled {
			if i == len(spec.Snaps)-1 {
				rep.Mems = append(rep.Mems, rep.Mem)
			} else {
				rep.Mems = append(rep.Mems, readMem())
			}
		}
	}
	time.Sleep(time.Until(spec.Stop))
	if err := r.stop(); err != nil {
		return err
	}
	if rep.Entries, err = rec.snapshot(); err != nil {
		return err
	}
	rep.Logs, rep.FirstLogs = logs.count()
	logs.mu.Lock()
	rep.Recorder = logs.recorder
	logs.mu.Unlock()
	return gob.NewEncoder(out).Encode(rep)
}

// recorder is the child's ledger: every run of the window's slots, in
// entries or, when spool is set, in its file.
type recorder struct {
	from, to int64
	mu       sync.Mutex
	entries  []entry
	spool    *spool
}

// add records a run of job (named "j<index>") for slot that started at
// start on the real clock.
func (r *recorder) add(job string, slot time.Time, fence int64, start time.Time) {
	s := slot.Unix()
	if s < r.from || s > r.to {
		return
	}
	idx, _ := strconv.Atoi(strings.TrimPrefix(job, "j"))
	e := entry{Job: int32(idx), Slot: s, Fence: fence, Start: start.UnixNano()}
	r.mu.Lock()
	if r.spool != nil {
		r.spool.add(e)
	} else {
		r.entries = append(r.entries, e)
	}
	r.mu.Unlock()
}

// snapshot is the ledger so far (the spool's, read back).
func (r *recorder) snapshot() ([]entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spool != nil {
		return r.spool.read()
	}
	return append([]entry(nil), r.entries...), nil
}

// countWriter counts the scheduler's warn-level log lines while counting
// is on (the window) and keeps the first few.
type countWriter struct {
	mu       sync.Mutex
	on       bool
	n        int
	first    []string
	recorder []string
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if bytes.Contains(p, []byte("skip records")) && len(w.recorder) < 20 {
		w.recorder = append(w.recorder, string(p))
	}
	if w.on {
		w.n++
		if len(w.first) < 5 {
			w.first = append(w.first, string(p))
		}
	}
	w.mu.Unlock()
	return len(p), nil
}

func (w *countWriter) counting(on bool) {
	w.mu.Lock()
	w.on = on
	w.mu.Unlock()
}

func (w *countWriter) count() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.first
}

// memSnap is a replica's memory at the window's end.
type memSnap struct {
	// RSS and HWM (peak RSS) are /proc/self/status's VmRSS and VmHWM; Heap
	// is the Go heap in use (HeapInuse) when read, Live the heap still
	// reachable after a forced GC (HeapAlloc).
	RSS, HWM, Heap, Live uint64
}

func readMem() memSnap {
	var m memSnap
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			kb, _ := strconv.ParseUint(f[0], 10, 64)
			switch k {
			case "VmRSS":
				m.RSS = kb << 10
			case "VmHWM":
				m.HWM = kb << 10
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.Heap = ms.HeapInuse
	m.Live = liveHeap()
	return m
}

// liveHeap is the heap still reachable after a forced GC.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// writeHeapProfile writes the heap profile (as of the last GC) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

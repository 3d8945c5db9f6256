package jobs

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// countedArgs counts how often it is decoded.
type countedArgs struct {
	N    int
	Tags []string
}

var decodes atomic.Int64

func (c *countedArgs) UnmarshalYAML(n *yaml.Node) error {
	decodes.Add(1)
	var raw struct {
		N    int      `yaml:"n"`
		Tags []string `yaml:"tags"`
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	c.N, c.Tags = raw.N, raw.Tags
	return nil
}

// counted records the args of each run of test.counted.
var counted = struct {
	sync.Mutex
	got []countedArgs
}{}

func init() {
	Register("test.counted", func(ctx context.Context, r Run, a countedArgs) error {
		counted.Lock()
		counted.got = append(counted.got, a)
		counted.Unlock()
		a.N = -1 // a run's own copy: the next run must not see it
		return nil
	})
}

func countedRuns(t *testing.T, j *Job, runs int) []countedArgs {
	t.Helper()
	counted.Lock()
	from := len(counted.got)
	counted.Unlock()
	for range runs {
		if err := j.Run(t.Context(), Run{}); err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	counted.Lock()
	defer counted.Unlock()
	return append([]countedArgs(nil), counted.got[from:]...)
}

func TestArgsDecodedOnce(t *testing.T) {
	node := func(t *testing.T, src string) *yaml.Node {
		t.Helper()
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatal(err)
		}
		return doc.Content[0]
	}
	tests := []struct {
		name  string
		job   func(t *testing.T) *Job
		loads int64 // decodes at load
		runs  int64 // decodes during three runs
		want  int   // args.N every run must see
	}{
		{"loaded", func(t *testing.T) *Job {
			return mustParse(t, "jobs:\n  a: {schedule: '@hourly', func: test.counted, args: {n: 7, tags: [x]}}\n", nil).Jobs[0]
		}, 1, 0, 7},
		{"loaded without args", func(t *testing.T) *Job {
			return mustParse(t, "jobs:\n  a: {schedule: '@hourly', func: test.counted}\n", nil).Jobs[0]
		}, 0, 0, 0},
		{"built by hand", func(t *testing.T) *Job {
			return &Job{Name: "h", Kind: KindFunc, Func: "test.counted", Args: node(t, "{n: 3}")}
		}, 0, 1, 3},
		{"built by hand without args", func(t *testing.T) *Job {
			return &Job{Name: "h", Kind: KindFunc, Func: "test.counted"}
		}, 0, 0, 0},
		{"loaded, then args replaced", func(t *testing.T) *Job {
			j := mustParse(t, "jobs:\n  a: {schedule: '@hourly', func: test.counted, args: {n: 1}}\n", nil).Jobs[0]
			j.Args = node(t, "{n: 5}")
			return j
		}, 1, 1, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := decodes.Load()
			j := tt.job(t)
			if got := decodes.Load() - before; got != tt.loads {
				t.Errorf("got %d decodes at load, want %d", got, tt.loads)
			}
			before = decodes.Load()
			got := countedRuns(t, j, 3)
			if n := decodes.Load() - before; n != tt.runs {
				t.Errorf("got %d decodes during 3 runs, want %d", n, tt.runs)
			}
			if len(got) != 3 {
				t.Fatalf("got %d runs, want 3", len(got))
			}
			for i, a := range got {
				if a.N != tt.want {
					t.Errorf("run %d: got args.N %d, want %d (each run gets its own copy)", i+1, a.N, tt.want)
				}
			}
		})
	}
}

// TestArgsSharedBetweenRuns documents the cost of decoding once: what a
// slice in T holds is shared by every run.
func TestArgsSharedBetweenRuns(t *testing.T) {
	j := mustParse(t, "jobs:\n  a: {schedule: '@hourly', func: test.counted, args: {tags: [x, y]}}\n", nil).Jobs[0]
	got := countedRuns(t, j, 2)
	if &got[0].Tags[0] != &got[1].Tags[0] {
		t.Errorf("got distinct Tags arrays, want one array shared by both runs")
	}
}

func TestArgsBadOnJobBuiltByHand(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("{n: many}"), &doc); err != nil {
		t.Fatal(err)
	}
	j := &Job{Name: "h", Kind: KindFunc, Func: "test.echo", Args: doc.Content[0]}
	for i := range 2 {
		if err := j.Run(t.Context(), Run{}); err == nil {
			t.Errorf("run %d: got nil, want an invalid config error", i+1)
		}
	}
}

func TestArgsConcurrentFirstRuns(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("{n: 2}"), &doc); err != nil {
		t.Fatal(err)
	}
	j := &Job{Name: "h", Kind: KindFunc, Func: "test.counted", Args: doc.Content[0]}
	before := decodes.Load()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := j.Run(context.Background(), Run{}); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	wg.Wait()
	if got := decodes.Load() - before; got != 1 {
		t.Errorf("got %d decodes for 8 concurrent runs, want 1", got)
	}
}

// TestArgsCacheDropsCollectedNodes: Jobs built by hand again and again do
// not grow the cache.
func TestArgsCacheDropsCollectedNodes(t *testing.T) {
	e := lookupFunc("test.counted")
	start := e.cache.size()
	for range 20 {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("{n: 1}"), &doc); err != nil {
			t.Fatal(err)
		}
		j := &Job{Name: "h", Kind: KindFunc, Func: "test.counted", Args: doc.Content[0]}
		if err := j.Run(t.Context(), Run{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if got := e.cache.size(); got <= start {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("got %d cached args nodes after GC, want at most %d", got, start)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

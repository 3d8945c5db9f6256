package jobs

import (
	"fmt"
	"math/rand"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"weak"

	"gopkg.in/yaml.v3"
)

// checkStream fails t if parseStream decodes data, and parseTree, which
// reads the whole tree first, decodes it differently. It returns whether
// parseStream decoded it.
func checkStream(t *testing.T, data []byte, env func(string) (string, bool)) bool {
	t.Helper()
	if env == nil {
		env = mapEnv(nil)
	}
	if !streamable(data) {
		return false
	}
	got, ok, outside := parseStream("s.yaml", data, env)
	if !ok {
		if _, fast := fastParse(data); outside && fast {
			t.Fatalf("parseStream says %q is outside fastParse's subset, fastParse reads it", data)
		}
		return false
	}
	want, err := parseTree("s.yaml", data, env, true)
	if err != nil {
		t.Fatalf("parseStream decoded %q, parseTree says: %v", data, err)
	}
	if diff := sameConfig(got, want); diff != "" {
		t.Fatalf("parseStream and parseTree differ on %q: %s", data, diff)
	}
	return true
}

// sameConfig returns where got and want differ, or "".
func sameConfig(got, want *Config) string {
	if len(got.Jobs) != len(want.Jobs) {
		return fmt.Sprintf("got %d jobs, want %d", len(got.Jobs), len(want.Jobs))
	}
	for i := range got.Jobs {
		if !reflect.DeepEqual(got.Jobs[i], want.Jobs[i]) {
			return fmt.Sprintf("job %d: got %+v, want %+v", i, got.Jobs[i], want.Jobs[i])
		}
	}
	// Secrets by their values, labels and order (their redaction tables
	// are built lazily).
	if gs, ws := got.Secrets, want.Secrets; !reflect.DeepEqual(gs.order, ws.order) || !reflect.DeepEqual(gs.values, ws.values) {
		return fmt.Sprintf("got secrets %q, want %q", gs.values, ws.values)
	}
	g, w := *got, *want
	g.Jobs, w.Jobs = nil, nil
	g.Secrets, w.Secrets = nil, nil
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("got %+v, want %+v", g, w)
	}
	return ""
}

// streamEnv is the environment of the stream tests' ${VAR}s: a secret
// URL, a message, and a duration (read as one: not a secret).
var streamEnv = mapEnv(map[string]string{"URL": "redis://:sekrit-password@127.0.0.1:6379", "MSG": "hello world", "T": "20s", "N": "5"})

func TestStream(t *testing.T) {
	redis := "redis:\n  url: redis://127.0.0.1:6379\n"
	evenQuorum := "redis:\n  quorum:\n  - redis://127.0.0.1:1\n  - redis://127.0.0.1:2\n  - redis://127.0.0.1:3\n  - redis://127.0.0.1:4\n"
	job := "jobs:\n  a: {schedule: '@every 5s', func: test.echo, args: {message: hi, tags: [x, y]}}\n  b:\n    schedule: 0 * * * * *\n    command: [no-such-program-x, -v]\n"
	defaults := "defaults:\n  catchup_window: 5m\n  history: {keep: 7}\n  retry: {attempts: 3}\n"
	for _, c := range []struct {
		name   string
		in     string
		stream bool // parseStream decodes it (else Parse decodes it from the tree)
	}{
		{"defaults before jobs", redis + defaults + job, true},
		{"top level after jobs", defaults + job + evenQuorum + "shutdown_grace: 20s\n", true},
		{"warnings on both sides of jobs", evenQuorum + job + "shutdown_grace: 20s\n", true},
		{"no defaults", job, true},
		{"defaults after jobs", redis + job + defaults, false},
		{"two defaults", defaults + job + defaults, false},
		{"two jobs blocks", defaults + job + job, false},
		{"a job's problem", "jobs:\n  a: {schedule: nope, func: test.echo}\n", false},
		{"a top-level problem after jobs", job + "shutdown_grace: soon\n", false},
		{"a duplicate job", "jobs:\n  a: {schedule: '@every 5s', func: test.echo}\n  a: {schedule: '@every 6s', func: test.echo}\n", false},
		{"flow jobs", "jobs: {a: {schedule: '@every 5s', func: test.echo}}\n", false},
		{"jobs a sequence", "jobs:\n- a\n", false},
		{"no jobs", defaults, false},
		{"a comment", "# c\n" + job, false},
		{"a variable's default", "jobs:\n  a: {schedule: '${S:-@every 5s}', func: test.echo}\n", true},
		{"variables on both sides of jobs", "redis:\n  url: ${URL}\njobs:\n  a: {schedule: '@every 5s', func: test.echo, args: {message: '${MSG}'}}\n  b: {schedule: '@every 5s', command: [echo, '${MSG}'], timeout: '${T}'}\n  c: {schedule: '@every 5s', func: test.echo}\nshutdown_grace: ${T}\n", true},
		{"an unset variable", "jobs:\n  a: {schedule: '${NOPE}', func: test.echo}\n", false},
		{"outside the subset", job + "x: &a 1\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := checkStream(t, []byte(c.in), streamEnv); got != c.stream {
				t.Fatalf("parseStream decoded it: got %v, want %v", got, c.stream)
			}
			// Whichever way Parse takes, it gives parseTree's result.
			cfg, err := Parse("s.yaml", []byte(c.in), streamEnv)
			want, wantErr := parseTree("s.yaml", []byte(c.in), streamEnv, true)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("Parse: got error %v, want %v", err, wantErr)
			}
			if err == nil {
				if diff := sameConfig(cfg, want); diff != "" {
					t.Fatalf("Parse and parseTree differ: %s", diff)
				}
			}
		})
	}
}

// TestStreamWarningOrder checks that the warnings of a streamed file come
// in the tree's order: the top level's (here after the jobs in the file)
// before the jobs'.
func TestStreamWarningOrder(t *testing.T) {
	in := "jobs:\n  b: {schedule: '@every 5s', command: [no-such-program-x]}\nredis:\n  quorum:\n  - redis://127.0.0.1:1\n  - redis://127.0.0.1:2\n  - redis://127.0.0.1:3\n  - redis://127.0.0.1:4\n"
	cfg, ok, _ := parseStream("s.yaml", []byte(in), mapEnv(nil))
	if !ok {
		t.Fatal("parseStream did not decode the file")
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.Error())
	}
	if len(got) != 2 || !strings.Contains(got[0], "even number of masters") || !strings.Contains(got[1], "PATH") {
		t.Fatalf("got warnings %q, want the quorum's then the command's", got)
	}
}

// TestStreamRandom holds parseStream to parseTree on random files of jobs,
// with the top-level keys in random order and some values that are wrong.
func TestStreamRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	const files = 2000
	streamed := 0
	for i := 0; i < files; i++ {
		if checkStream(t, []byte(randomJobsFile(rng)), streamEnv) {
			streamed++
		}
	}
	// Most files stream, so that the comparison has teeth.
	if streamed < files/3 {
		t.Fatalf("parseStream decoded %d of %d random files, want at least a third", streamed, files)
	}
}

var (
	// randomJobValues are values the decoder takes; randomBadValues, one it
	// refuses for each key.
	randomJobValues = map[string][]string{
		"schedule":       {"'@every 5s'", "'* * * * * *'", "'@every 20s'"}, // quick to check: a spec's interval is found by a scan
		"timezone":       {"UTC", "Europe/Paris"},
		"lock_ttl":       {"10s", "1m"},
		"overlap":        {"forbid", "allow"},
		"timeout":        {"5s", "0s", "${T}", "'${T}'"},
		"catchup_window": {"1m", "0s", "10m"},
		"jitter":         {"0s", "2s"},
		"retry":          {"{attempts: 2}", "{attempts: 3}"},
		"history":        {"{keep: 5}", "{keep: 100}"},
		"enabled":        {"true", "false"},
		"output_tail":    {"100", "0", "${N}", "'${N}'", "${N:-7}"},
		"func":           {"test.echo"},
		"args":           {"{message: hi}", "{count: 2, tags: [a, b]}", "{message: '${MSG}'}"},
		"command":        {"[true]", "[no-such-program-x, -v]", "[echo, '${MSG}']"},
		"env":            {"{A: b}", "{A: '${MSG}', B: '${URL}'}"},
		"kill_grace":     {"1s", "60s"},
		"http":           {"{url: 'http://127.0.0.1:1/x'}", "{url: 'http://127.0.0.1:1/y', method: POST, expect: [200, 204]}"},
	}
	randomBadValues = map[string]string{
		"schedule": "nope", "timezone": "Mars/Base", "lock_ttl": "0s", "overlap": "sometimes", "timeout": "-1s",
		"catchup_window": "soon", "jitter": "-2s", "retry": "{attempts: 0}", "history": "{keep: x}", "enabled": "maybe",
		"output_tail": "-1", "func": "test.missing", "args": "{count: many}", "command": "[]", "env": "{A: [b]}",
		"kill_grace": "x", "http": "{url: nope}",
	}
	randomDefaultKeys = []string{"timezone", "lock_ttl", "overlap", "timeout", "catchup_window", "jitter", "retry", "history", "output_tail"}
	// randomTopLevel are top-level blocks, each a choice of values for one key.
	randomTopLevel = [][]string{
		{"redis:\n  url: redis://127.0.0.1:6379\n", "redis:\n  url: ${URL}\n", "redis:\n  quorum:\n  - redis://127.0.0.1:1\n  - redis://127.0.0.1:2\n  - redis://127.0.0.1:3\n  - redis://127.0.0.1:4\n"},
		{"shutdown_grace: 20s\n", "shutdown_grace: 1m\n", "shutdown_grace: ${T}\n"},
	}
)

// randomJobsFile returns a random jobs.yaml in fastParse's subset: a
// defaults: block, a jobs: block and other top-level keys in random
// order, most of them correct (one value in 40 is not).
func randomJobsFile(rng *rand.Rand) string {
	pick := func(key string) string {
		if rng.Intn(40) == 0 {
			return randomBadValues[key]
		}
		vs := randomJobValues[key]
		return vs[rng.Intn(len(vs))]
	}
	blocks := []string{}
	if rng.Intn(3) > 0 {
		var b strings.Builder
		b.WriteString("defaults:\n")
		for n := 1 + rng.Intn(3); n > 0; n-- {
			k := randomDefaultKeys[rng.Intn(len(randomDefaultKeys))]
			if !strings.Contains(b.String(), "\n  "+k+":") {
				fmt.Fprintf(&b, "  %s: %s\n", k, pick(k))
			}
		}
		blocks = append(blocks, b.String())
	}
	for _, vs := range randomTopLevel {
		if rng.Intn(2) == 0 {
			blocks = append(blocks, vs[rng.Intn(len(vs))])
		}
	}
	var b strings.Builder
	b.WriteString("jobs:\n")
	for n := 1 + rng.Intn(6); n > 0; n-- {
		fields := []string{"schedule: " + pick("schedule")}
		switch rng.Intn(3) {
		case 0:
			fields = append(fields, "func: "+pick("func"))
			if rng.Intn(2) == 0 {
				fields = append(fields, "args: "+pick("args"))
			}
		case 1:
			fields = append(fields, "command: "+pick("command"))
			if rng.Intn(3) == 0 {
				fields = append(fields, "env: "+pick("env"), "kill_grace: "+pick("kill_grace"))
			}
		default:
			fields = append(fields, "http: "+pick("http"))
		}
		for m := rng.Intn(3); m > 0; m-- {
			k := randomDefaultKeys[rng.Intn(len(randomDefaultKeys))]
			if rng.Intn(4) == 0 {
				k = "enabled"
			}
			fields = append(fields, k+": "+pick(k)) // sometimes twice: a duplicate key
		}
		name := fmt.Sprintf("j%d", rng.Intn(1000)) // sometimes twice: a duplicate job
		if rng.Intn(2) == 0 {
			fmt.Fprintf(&b, "  %s: {%s}\n", name, strings.Join(fields, ", "))
		} else {
			fmt.Fprintf(&b, "  %s:\n    %s\n", name, strings.Join(fields, "\n    "))
		}
	}
	blocks = append(blocks, b.String())
	rng.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
	return strings.Join(blocks, "")
}

// weakSink is a jobStream that keeps a weak pointer to each job's value.
type weakSink struct {
	*jobStream
	values []weak.Pointer[yaml.Node]
}

func (w *weakSink) job(k, v *yaml.Node) bool {
	w.values = append(w.values, weak.Make(v))
	w.jobStream.job(k, v)
	return false // not reused: the nodes must become garbage
}

// TestStreamDropsNodes checks that a streamed job's nodes are garbage once
// the job is built, while the jobs are alive: what the stream is for.
func TestStreamDropsNodes(t *testing.T) {
	var b strings.Builder
	b.WriteString("defaults: {history: {keep: 5}}\njobs:\n")
	const n = 200
	for i := range n {
		fmt.Fprintf(&b, "  j%d: {schedule: '@every 5s', func: test.noargs}\n", i)
	}
	d := newDecoder("s.yaml", mapEnv(nil))
	s := &weakSink{jobStream: &jobStream{d: d}}
	doc, ok := fastParseStream([]byte(b.String()), s)
	if !ok || len(s.jobs) != n || len(d.probs) > 0 {
		t.Fatalf("got ok %v, %d jobs, problems %v; want true, %d, none", ok, len(s.jobs), d.probs, n)
	}
	if m := doc.Content[0].Content[3]; m != s.jobsNode || len(m.Content) != 0 {
		t.Fatalf("the tree's jobs: node holds %d nodes, want none", len(m.Content))
	}
	runtime.GC()
	alive := 0
	for _, p := range s.values {
		if p.Value() != nil {
			alive++
		}
	}
	if alive > 0 {
		t.Fatalf("%d of %d jobs' nodes are still reachable after they were decoded, want 0", alive, n)
	}
	runtime.KeepAlive(s.jobs)
	runtime.KeepAlive(doc)
}

// TestStreamStopsAtAProblem checks that the stream stops at the first job
// with a problem (the file is then decoded from its tree, whose messages
// are the ones given): a refused reload of a large file costs one decode,
// not two.
func TestStreamStopsAtAProblem(t *testing.T) {
	var b strings.Builder
	b.WriteString("jobs:\n  bad: {schedule: nope, func: test.noargs}\n")
	for i := range 100 {
		fmt.Fprintf(&b, "  j%d: {schedule: '@every 5s', func: test.noargs}\n", i)
	}
	s := &jobStream{d: newDecoder("s.yaml", mapEnv(nil))}
	if _, ok := fastParseStream([]byte(b.String()), s); ok {
		t.Fatal("the stream read the whole file, want it stopped")
	}
	if len(s.seen) != 1 {
		t.Fatalf("got %d jobs decoded, want 1 (the bad one)", len(s.seen))
	}
	_, err := Parse("s.yaml", []byte(b.String()), nil)
	if err == nil || !strings.Contains(err.Error(), "s.yaml:2: job bad: field schedule") {
		t.Fatalf("got error %v, want the bad job's schedule at line 2", err)
	}
}

package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/redcron/redcron/scheduler/schedule"
)

// This file is the decoder's core: it walks the YAML document, collects
// every problem with its file and line, and drives the key tables of the
// blocks (toplevel.go, redisblock.go, fields.go and the per-kind blocks).

// Load reads path and decodes it with Parse, expanding ${VAR} from the
// process environment. A file that cannot be read gives an error wrapping
// ErrReadConfig and the os error (not ErrInvalidConfig).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReadConfig, err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse decodes a jobs.yaml strictly. file names the source in messages (and
// anchors relative `dir:` paths); lookupEnv resolves ${VAR} (nil: nothing is
// set). On failure it returns a *ConfigError listing every problem, each as
// "file:line: job NAME: field FIELD: message", and errors.Is(err,
// ErrInvalidConfig) holds. Parse never panics.
//
// Top-level keys: redis, shutdown_grace, defaults, jobs. The defaults: block
// accepts every per-job key; a job's own keys override it key by key, the
// retry and http blocks merge key by key, and the env and headers maps merge
// entry by entry. A func/command/http key in defaults is the kind of the jobs
// that declare none.
func Parse(file string, data []byte, lookupEnv func(string) (string, bool)) (cfg *Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			cfg = nil
			err = &ConfigError{Problems: []*Problem{{File: file, Msg: fmt.Sprintf("internal error while decoding (please report): %v", r)}}}
		}
	}()
	return parse(file, data, lookupEnv)
}

// decoder holds the state of one Parse: the file, the environment and the
// problems found so far.
type decoder struct {
	file   string
	lookup func(string) (string, bool)
	probs  []*Problem
	warns  []*Problem
	bad    map[*yaml.Node]bool // nodes already reported (bad ${VAR})
	// expanded holds the scalars that ${VAR} changed: a quoted "${N}" may
	// then still be read as an integer or a boolean.
	expanded map[*yaml.Node]bool

	// vars are the names of the variables the file's ${VAR} forms read, in
	// order of first use; expansions are the values the environment gave
	// them, where they went (secrets.go of the decoder: see secrets).
	vars       []string
	expansions []expansion
	// typed holds the expanded scalars read as a number, a boolean or a
	// duration; textual those read as text (see readAs). An expansion is
	// a secret unless its scalar was only ever read as a number, a
	// boolean or a duration.
	typed, textual map[*yaml.Node]bool
	// secrets are the secrets found while decoding (Redis passwords), to
	// which the expansions are added at the end.
	secrets *Secrets
	// inPath caches whether a program name is in PATH: a file of 100,000
	// command jobs named a few programs, and looking each up took 1.5 s.
	inPath map[string]bool
	// schedules caches the schedules parsed, by spec and zone: 100,000
	// jobs name a few thousand specs, and parsing each job's took a fifth
	// of loading them.
	schedules map[scheduleKey]schedule.Schedule
	// draft is the job draft that each job's decoding starts over (see
	// jobDraft.reset): a draft lives only while its job decodes, and
	// allocating one per job was a fifth of a load's allocations.
	draft jobDraft
}

// scheduleKey is a parsed schedule's spec and zone.
type scheduleKey struct {
	spec string
	loc  *time.Location
}

// expansion is one ${VAR} that the environment resolved, in the scalar
// node, at path.
type expansion struct {
	node        *yaml.Node
	path        at
	name, value string
}

// at locates a value for messages.
type at struct{ job, field string }

func (a at) sub(field string) at {
	if a.field == "" {
		return at{a.job, field}
	}
	return at{a.job, a.field + "." + field}
}

// index locates the i-th element of the list at a.
func (a at) index(i int) at {
	return at{a.job, fmt.Sprintf("%s[%d]", a.field, i)}
}

func (d *decoder) fail(n *yaml.Node, a at, sentinel error, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.probs = append(d.probs, &Problem{File: d.file, Line: line, Job: a.job, Field: a.field, Msg: fmt.Sprintf(format, args...), Err: sentinel})
}

func (d *decoder) warn(n *yaml.Node, a at, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.warns = append(d.warns, &Problem{File: d.file, Line: line, Job: a.job, Field: a.field, Msg: fmt.Sprintf(format, args...)})
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// parse is Parse without the recover, for the fuzz test: it reads the one
// YAML document, expands ${VAR}, and decodes the top level (toplevel.go),
// each job as it is read where the file allows it (stream.go).
func parse(file string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	fast := true
	if streamable(data) {
		cfg, ok, outside := parseStream(file, data, lookupEnv)
		if ok {
			return cfg, nil
		}
		fast = !outside
	}
	return parseTree(file, data, lookupEnv, fast)
}

// parseTree decodes data from its whole node tree: read by fastParse
// (unless fast is false: data is known to be outside its subset), or by
// yaml.v3, then ${VAR} expanded over it.
func parseTree(file string, data []byte, lookupEnv func(string) (string, bool), fast bool) (*Config, error) {
	d := newDecoder(file, lookupEnv)
	var root *yaml.Node
	ok := false
	if fast {
		root, ok = fastParse(data)
	}
	if !ok {
		if root, ok = d.yamlParse(data); !ok {
			return nil, d.result()
		}
	}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		if isNull(root) {
			d.fail(root, at{}, nil, "no jobs: the file has no jobs: block")
		} else {
			d.fail(root, at{}, nil, "want a mapping with a jobs: block, got %s", describe(root))
		}
		return nil, d.result()
	}
	d.expandTree(root, make([]string, 0, 8)) // room for a path's keys: siblings reuse it

	cfg := d.topLevel(root, nil)
	d.collectSecrets()
	if len(d.probs) > 0 {
		return nil, d.result()
	}
	return d.complete(cfg), nil
}

func newDecoder(file string, lookupEnv func(string) (string, bool)) *decoder {
	return &decoder{file: file, lookup: lookupEnv, bad: map[*yaml.Node]bool{}, expanded: map[*yaml.Node]bool{},
		typed: map[*yaml.Node]bool{}, textual: map[*yaml.Node]bool{}, secrets: NewSecrets()}
}

// complete adds to cfg, decoded without a problem, its warnings, secrets
// and variables.
func (d *decoder) complete(cfg *Config) *Config {
	d.redactProblems(d.warns)
	cfg.Warnings = d.warns
	cfg.Secrets = d.secrets
	cfg.Vars = d.vars
	for _, j := range cfg.Jobs {
		if j.Command != nil {
			j.Command.Withhold = d.vars
		}
	}
	return cfg
}

// yamlParse reads data's one YAML document with yaml.v3, for a file
// outside fastParse's subset; on a problem it reports it and returns false.
func (d *decoder) yamlParse(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		d.fail(nil, at{}, nil, "no jobs: the file is empty")
		return nil, false
	case err != nil:
		d.syntax(err)
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			d.syntax(err)
		} else {
			d.fail(&extra, at{}, nil, "only one YAML document is accepted")
		}
		return nil, false
	}
	return &doc, true
}

func (d *decoder) result() error {
	d.redactProblems(d.probs)
	e := &ConfigError{Problems: d.probs}
	e.sort()
	return e
}

// syntax reports a yaml.v3 parse error at the line it names.
func (d *decoder) syntax(err error) {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
	}
	d.probs = append(d.probs, &Problem{File: d.file, Line: line, Msg: msg})
}

// pairsScanMax is the most keys for which pairs finds a duplicate by a scan
// of the keys before it rather than a map (quicker for a job's few keys, for
// each of 100,000 jobs).
const pairsScanMax = 16

// pairs returns the key/value pairs of mapping m, reporting duplicate and
// non-string keys (yaml.v3 only catches duplicates when decoding into Go values).
func (d *decoder) pairs(m *yaml.Node, a at) [][2]*yaml.Node {
	m = deref(m)
	out := make([][2]*yaml.Node, 0, len(m.Content)/2)
	var seen map[string]int // for a mapping of more than pairsScanMax keys
	if cap(out) > pairsScanMax {
		seen = make(map[string]int, cap(out))
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, a, nil, "a key must be a string, got %s", describe(k))
			continue
		}
		if k.Value == "<<" {
			d.fail(k, a.sub("<<"), nil, "merge keys are not supported; use the defaults: block")
			continue
		}
		first := -1
		if seen != nil {
			if line, dup := seen[k.Value]; dup {
				first = line
			} else {
				seen[k.Value] = k.Line
			}
		} else if j := slices.IndexFunc(out, func(kv [2]*yaml.Node) bool { return kv[0].Value == k.Value }); j >= 0 {
			first = out[j][0].Line
		}
		if first >= 0 {
			d.fail(k, a.sub(k.Value), nil, "duplicate key (first at line %d)", first)
			continue
		}
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

// deref follows aliases (a bounded number of times).
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null") || n.Kind == 0
}

// describe names a node's type for messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	switch {
	case n == nil || isNull(n):
		return "nothing (null)"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int":
			return "an integer " + strconv.Quote(n.Value)
		case "!!float":
			return "a number " + strconv.Quote(n.Value)
		case "!!bool":
			return "a boolean " + strconv.Quote(n.Value)
		}
		return "the string " + strconv.Quote(n.Value)
	}
	return "an alias"
}

// blockKey is one key of a mapping block: its name and the decoder of its
// value into the block being built (dst). a locates the value.
type blockKey[T any] struct {
	name   string
	decode func(d *decoder, dst T, k, v *yaml.Node, a at)
}

// keyTable is the one list of the keys a block accepts: decodeBlock looks
// keys up in it, and the "known:" list and the block's shape in messages
// are derived from it. Its order is the order of the shape.
type keyTable[T any] []blockKey[T]

func (t keyTable[T]) find(name string) *blockKey[T] {
	for i := range t {
		if t[i].name == name {
			return &t[i]
		}
	}
	return nil
}

func (t keyTable[T]) names() []string {
	names := make([]string, len(t))
	for i, k := range t {
		names[i] = k.name
	}
	return names
}

// known lists the keys sorted, for "unknown key (known: ...)".
func (t keyTable[T]) known() string { return knownList(t.names()) }

// shape lists the keys in table order, as in "want a mapping {a, b}".
func (t keyTable[T]) shape() string { return "{" + strings.Join(t.names(), ", ") + "}" }

// knownList sorts names and joins them with commas.
func knownList(names []string) string {
	return strings.Join(slices.Sorted(slices.Values(names)), ", ")
}

// joinWords joins names for a message: "a, b and c" with conj "and".
func joinWords(names []string, conj string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " " + conj + " " + names[len(names)-1]
}

// decodeBlock decodes each key of mapping n (already checked to be one)
// with its decoder from t; a key t does not hold is reported with the
// known ones.
func decodeBlock[T any](d *decoder, n *yaml.Node, a at, t keyTable[T], dst T) {
	for _, kv := range d.pairs(n, a) {
		k, v := kv[0], kv[1]
		fa := a.sub(k.Value)
		key := t.find(k.Value)
		if key == nil {
			d.fail(k, fa, nil, "unknown key (known: %s)", t.known())
			continue
		}
		key.decode(d, dst, k, v, fa)
	}
}

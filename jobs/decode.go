package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/redcron/redcron/scheduler/schedule"
)

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

type decoder struct {
	file   string
	lookup func(string) (string, bool)
	probs  []*Problem
	warns  []*Problem
	bad    map[*yaml.Node]bool // nodes already reported (bad ${VAR})
	// expanded holds the scalars that ${VAR} changed: a quoted "${N}" may
	// then still be read as an integer or a boolean.
	expanded map[*yaml.Node]bool
}

// at locates a value for messages.
type at struct{ job, field string }

func (a at) sub(field string) at {
	if a.field == "" {
		return at{a.job, field}
	}
	return at{a.job, a.field + "." + field}
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

func parse(file string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	d := &decoder{file: file, lookup: lookupEnv, bad: map[*yaml.Node]bool{}, expanded: map[*yaml.Node]bool{}}
	cfg := &Config{File: file, Redis: defaultRedis(), ShutdownGrace: DefaultShutdownGrace}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		d.fail(nil, at{}, nil, "no jobs: the file is empty")
		return nil, d.result()
	case err != nil:
		d.syntax(err)
		return nil, d.result()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			d.syntax(err)
		} else {
			d.fail(&extra, at{}, nil, "only one YAML document is accepted")
		}
		return nil, d.result()
	}
	root := &doc
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
	d.expandTree(root, nil)

	var defaultsNode, jobsNode *yaml.Node
	for _, kv := range d.pairs(root, at{}) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "redis":
			d.redis(v, &cfg.Redis)
		case "shutdown_grace":
			if g, ok := d.duration(v, at{field: "shutdown_grace"}); ok {
				if g < 0 {
					d.fail(v, at{field: "shutdown_grace"}, nil, "must not be negative, got %s", g)
				} else {
					cfg.ShutdownGrace = g
				}
			}
		case "defaults":
			defaultsNode = v
		case "jobs":
			jobsNode = v
		default:
			d.fail(k, at{field: k.Value}, nil, "unknown key (known: defaults, jobs, redis, shutdown_grace)")
		}
	}

	defaults := newJobState()
	if defaultsNode != nil && !isNull(defaultsNode) {
		a := at{job: defaultsBlock}
		if m := deref(defaultsNode); m.Kind != yaml.MappingNode {
			d.fail(defaultsNode, a, nil, "want a mapping of per-job keys, got %s", describe(defaultsNode))
		} else {
			for _, kv := range d.pairs(m, a) {
				d.jobField(defaults, kv[0], kv[1], a, true)
			}
		}
	}

	if jobsNode == nil {
		d.fail(root, at{}, nil, "no jobs: the file has no jobs: block")
		return nil, d.result()
	}
	jm := deref(jobsNode)
	switch {
	case isNull(jm) || (jm.Kind == yaml.MappingNode && len(jm.Content) == 0):
		d.fail(jobsNode, at{field: "jobs"}, nil, "no jobs: the jobs: block is empty")
		return nil, d.result()
	case jm.Kind != yaml.MappingNode:
		d.fail(jobsNode, at{field: "jobs"}, nil, "want a mapping of job name to job, got %s", describe(jobsNode))
		return nil, d.result()
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(jm.Content); i += 2 {
		k, v := jm.Content[i], jm.Content[i+1]
		name := k.Value
		a := at{job: name}
		if k.Kind != yaml.ScalarNode {
			d.fail(k, at{field: "jobs"}, nil, "a job name must be a string, got %s", describe(k))
			continue
		}
		if first, dup := seen[name]; dup {
			d.fail(k, a.sub("name"), nil, "duplicate job name (first declared at line %d)", first)
			continue
		}
		seen[name] = k.Line
		if !jobNameRE.MatchString(name) {
			d.fail(k, a.sub("name"), nil, "unusable job name %q: use 1 to %d of A-Z a-z 0-9 _ . - (it goes into Redis keys)", name, MaxNameLen)
		}
		if j := d.job(defaults, name, k, v); j != nil {
			cfg.Jobs = append(cfg.Jobs, j)
		}
	}
	if len(d.probs) > 0 {
		return nil, d.result()
	}
	cfg.Warnings = d.warns
	return cfg, nil
}

var jobNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func (d *decoder) result() error {
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

// expandTree expands ${VAR} in every scalar value (not in keys), in place,
// before anything is decoded, so lines stay right. path locates the node.
func (d *decoder) expandTree(n *yaml.Node, path []string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			d.expandTree(n.Content[i+1], append(path[:len(path):len(path)], n.Content[i].Value))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := slices.Clone(path)
			if len(p) > 0 {
				p[len(p)-1] += "[" + strconv.Itoa(i) + "]"
			}
			d.expandTree(c, p)
		}
	case yaml.ScalarNode:
		v, err := expand(n.Value, d.lookup)
		if err != nil {
			d.bad[n] = true
			d.fail(n, pathAt(path), ErrUnsetVar, "%v", err)
			if !errors.Is(err, ErrUnsetVar) {
				d.probs[len(d.probs)-1].Err = nil
			}
			return
		}
		if v != n.Value {
			n.Value = v
			d.expanded[n] = true
			if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
				n.Tag = "" // a plain scalar: let the expanded text decide its type (e.g. ${N:-3} is an int)
				if v == "" {
					n.Tag = "!!str" // an empty expansion is an empty string, not null
				}
			}
		}
	}
	// Aliases are expanded where their anchor is defined.
}

// pathAt turns a node path into a message location.
func pathAt(path []string) at {
	switch {
	case len(path) >= 2 && path[0] == "jobs":
		return at{job: strings.SplitN(path[1], "[", 2)[0], field: strings.Join(path[2:], ".")}
	case len(path) >= 1 && path[0] == "defaults":
		return at{job: defaultsBlock, field: strings.Join(path[1:], ".")}
	}
	return at{field: strings.Join(path, ".")}
}

// pairs returns the key/value pairs of mapping m, reporting duplicate and
// non-string keys (yaml.v3 only catches duplicates when decoding into Go values).
func (d *decoder) pairs(m *yaml.Node, a at) [][2]*yaml.Node {
	m = deref(m)
	var out [][2]*yaml.Node
	seen := map[string]int{}
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
		if first, dup := seen[k.Value]; dup {
			d.fail(k, a.sub(k.Value), nil, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
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

// --- typed scalar helpers: each reports its own error and returns ok=false.

func (d *decoder) str(n *yaml.Node, a at) (string, bool) {
	n = deref(n)
	if d.bad[n] {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.fail(n, a, nil, "want a string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) duration(n *yaml.Node, a at) (time.Duration, bool) {
	n = deref(n)
	if d.bad[n] {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.fail(n, a, nil, "want a duration like 30s or 1m30s, got %s", describe(n))
		return 0, false
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.fail(n, a, nil, "bad duration %q: want a number with a unit, like 30s or 1m30s", n.Value)
		return 0, false
	}
	return v, true
}

func (d *decoder) integer(n *yaml.Node, a at) (int, bool) {
	n = deref(n)
	if d.bad[n] {
		return 0, false
	}
	var v int
	if n.Kind != yaml.ScalarNode || d.tag(n) != "!!int" || decodeNode(d.plain(n), &v) != nil {
		d.fail(n, a, nil, "want an integer, got %s", describe(n))
		return 0, false
	}
	return v, true
}

func (d *decoder) boolean(n *yaml.Node, a at) (bool, bool) {
	n = deref(n)
	if d.bad[n] {
		return false, false
	}
	var v bool
	if n.Kind != yaml.ScalarNode || d.tag(n) != "!!bool" || decodeNode(d.plain(n), &v) != nil {
		d.fail(n, a, nil, "want true or false, got %s", describe(n))
		return false, false
	}
	return v, true
}

// tag is n's resolved tag; an expanded quoted scalar resolves as if plain.
func (d *decoder) tag(n *yaml.Node) string {
	return d.plain(n).ShortTag()
}

// plain returns n, or for an expanded quoted scalar a plain copy of it.
func (d *decoder) plain(n *yaml.Node) *yaml.Node {
	if !d.expanded[n] || n.Style&yaml.TaggedStyle != 0 || n.Value == "" {
		return n
	}
	c := *n
	c.Style, c.Tag = 0, ""
	return &c
}

func (d *decoder) strList(n *yaml.Node, a at) ([]string, bool) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		d.fail(n, a, nil, "want a list of strings, got %s", describe(n))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, c := range n.Content {
		s, good := d.str(c, at{a.job, fmt.Sprintf("%s[%d]", a.field, i)})
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

// strMap decodes a string-to-string mapping, merged over base (not modified).
func (d *decoder) strMap(n *yaml.Node, a at, base map[string]string) (map[string]string, bool) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		d.fail(n, a, nil, "want a mapping of strings, got %s", describe(n))
		return nil, false
	}
	out := make(map[string]string, len(base)+len(n.Content)/2)
	for k, v := range base {
		out[k] = v
	}
	ok := true
	for _, kv := range d.pairs(n, a) {
		s, good := d.str(kv[1], a.sub(kv[0].Value))
		ok = ok && good
		out[kv[0].Value] = s
	}
	return out, ok
}

// --- redis:

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

func (d *decoder) redis(n *yaml.Node, r *RedisConfig) {
	a := at{field: "redis"}
	if isNull(n) {
		return
	}
	if deref(n).Kind != yaml.MappingNode {
		d.fail(n, a, nil, "want a mapping, got %s", describe(n))
		return
	}
	var modes []string
	for _, kv := range d.pairs(n, a) {
		k, v := kv[0], kv[1]
		fa := a.sub(k.Value)
		switch k.Value {
		case "url":
			if isNull(v) {
				continue // url: ~ means unset, like an empty string
			}
			if s, ok := d.str(v, fa); ok && s != "" && d.redisURL(v, fa, s) {
				r.URL = s
				modes = append(modes, "url")
			}
		case "sentinel":
			d.sentinel(v, fa, r)
			if r.Sentinel != nil {
				modes = append(modes, "sentinel")
			}
		case "cluster":
			if l, ok := d.strList(v, fa); ok && len(l) > 0 {
				for i, addr := range l {
					d.hostPort(deref(v).Content[i], at{fa.job, fmt.Sprintf("%s[%d]", fa.field, i)}, addr)
				}
				r.Cluster = l
				modes = append(modes, "cluster")
			}
		case "quorum":
			if l, ok := d.strList(v, fa); ok && len(l) > 0 {
				for i, u := range l {
					d.redisURL(deref(v).Content[i], at{fa.job, fmt.Sprintf("%s[%d]", fa.field, i)}, u)
				}
				switch {
				case len(l) < MinQuorum:
					d.fail(v, fa, nil, "quorum mode needs at least %d independent masters, got %d (a single master: use url)", MinQuorum, len(l))
				case len(l)%2 == 0:
					d.warn(v, fa, "an even number of masters (%d) tolerates no more failures than %d", len(l), len(l)-1)
				}
				r.Quorum = l
				modes = append(modes, "quorum")
			}
		case "username":
			r.Username, _ = d.str(v, fa)
		case "password":
			r.Password, _ = d.str(v, fa)
		case "tls":
			if b, ok := d.boolean(v, fa); ok {
				r.TLS = r.TLS || b
			}
		case "prefix":
			if s, ok := d.str(v, fa); ok {
				if !prefixRE.MatchString(s) {
					d.fail(v, fa, nil, "bad prefix %q: use 1 to 64 of A-Z a-z 0-9 _ . : - (no braces: keys carry a {job} hash tag)", s)
				} else {
					r.Prefix = s
				}
			}
		case "dial_timeout", "read_timeout", "write_timeout":
			if t, ok := d.duration(v, fa); ok {
				if t <= 0 {
					d.fail(v, fa, nil, "must be positive (every Redis call has a timeout), got %s", t)
					continue
				}
				switch k.Value {
				case "dial_timeout":
					r.DialTimeout = t
				case "read_timeout":
					r.ReadTimeout = t
				default:
					r.WriteTimeout = t
				}
			}
		case "max_clock_skew":
			if t, ok := d.duration(v, fa); ok {
				if t < 0 {
					d.fail(v, fa, nil, "must not be negative, got %s", t)
				} else {
					r.MaxClockSkew = t
				}
			}
		default:
			d.fail(k, fa, nil, "unknown key (known: cluster, dial_timeout, max_clock_skew, password, prefix, quorum, read_timeout, sentinel, tls, url, username, write_timeout)")
		}
	}
	if len(modes) > 1 {
		d.fail(n, a, nil, "set only one of url, sentinel, cluster and quorum, got %s", strings.Join(modes, " and "))
	}
	if strings.HasPrefix(r.URL, "rediss://") {
		r.TLS = true
	}
}

func (d *decoder) redisURL(n *yaml.Node, a at, s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		d.fail(n, a, nil, "bad URL: %v", err)
		return false
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Host == "" {
			d.fail(n, a, nil, "bad URL %q: no host", s)
			return false
		}
	case "unix":
		if u.Path == "" {
			d.fail(n, a, nil, "bad URL %q: no socket path", s)
			return false
		}
	default:
		d.fail(n, a, nil, "bad URL %q: want redis://, rediss:// or unix://", s)
		return false
	}
	return true
}

func (d *decoder) hostPort(n *yaml.Node, a at, s string) {
	if _, _, err := net.SplitHostPort(s); err != nil {
		d.fail(n, a, nil, "want host:port, got %q", s)
	}
}

func (d *decoder) sentinel(n *yaml.Node, a at, r *RedisConfig) {
	if deref(n).Kind != yaml.MappingNode {
		d.fail(n, a, nil, "want a mapping {master, addrs}, got %s", describe(n))
		return
	}
	s := &SentinelConfig{}
	for _, kv := range d.pairs(n, a) {
		k, v := kv[0], kv[1]
		fa := a.sub(k.Value)
		switch k.Value {
		case "master":
			s.Master, _ = d.str(v, fa)
		case "addrs":
			if l, ok := d.strList(v, fa); ok {
				for i, addr := range l {
					d.hostPort(deref(v).Content[i], at{fa.job, fmt.Sprintf("%s[%d]", fa.field, i)}, addr)
				}
				s.Addrs = l
			}
		default:
			d.fail(k, fa, nil, "unknown key (known: addrs, master)")
		}
	}
	if s.Master == "" {
		d.fail(n, a.sub("master"), nil, "missing: the monitored master's name")
	}
	if len(s.Addrs) == 0 {
		d.fail(n, a.sub("addrs"), nil, "missing: at least one sentinel host:port")
	}
	r.Sentinel = s
}

// --- jobs

// jobState accumulates one job (or the defaults block) while decoding.
type jobState struct {
	job   Job
	cmd   CommandSpec
	http  HTTPSpec
	tz    *yaml.Node            // timezone node, if set
	kinds []*yaml.Node          // the func/command/http keys, in order
	nodes map[string]*yaml.Node // field -> value node that set it (for later messages)
	local map[string]*yaml.Node // command-only keys set by the job itself
}

func newJobState() *jobState {
	return &jobState{
		job: Job{
			Location:      time.UTC,
			LockTTL:       DefaultLockTTL,
			Overlap:       OverlapForbid,
			CatchupWindow: DefaultCatchupWindow,
			Enabled:       true,
			Retry:         Retry{Attempts: DefaultRetryAttempts, Backoff: DefaultRetryBackoff, MaxBackoff: DefaultRetryMax},
		},
		cmd:   CommandSpec{KillGrace: DefaultKillGrace, OutputLimit: DefaultOutputLimit},
		http:  HTTPSpec{Method: DefaultHTTPMethod, Timeout: DefaultHTTPTimeout},
		nodes: map[string]*yaml.Node{},
		local: map[string]*yaml.Node{},
	}
}

func (s *jobState) clone() *jobState {
	c := *s
	c.kinds = nil
	c.nodes = maps(s.nodes)
	c.local = map[string]*yaml.Node{}
	return &c
}

func maps[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

const jobKeys = "args, catchup_window, command, dir, enabled, env, func, http, jitter, kill_grace, lock_ttl, output_limit, overlap, retry, schedule, timeout, timezone"

// jobField decodes one per-job key into s. Single-field rules are checked
// here, so a bad value in defaults: is reported once, at its line.
// commandOnly are the job keys that only command jobs take.
var commandOnly = map[string]bool{"env": true, "dir": true, "kill_grace": true, "output_limit": true}

func (d *decoder) jobField(s *jobState, k, v *yaml.Node, a at, isDefaults bool) {
	fa := a.sub(k.Value)
	s.nodes[k.Value] = v
	nonNeg := func(name string, dst *time.Duration) {
		if t, ok := d.duration(v, fa); ok {
			if t < 0 {
				d.fail(v, fa, nil, "must not be negative, got %s", t)
				return
			}
			*dst = t
		}
	}
	if commandOnly[k.Value] && !isDefaults {
		s.local[k.Value] = k // refused later unless the job is a command
	}
	switch k.Value {
	case "schedule":
		s.job.Spec, _ = d.str(v, fa)
	case "timezone":
		if name, ok := d.str(v, fa); ok {
			if loc, err := loadZone(name); err != nil {
				d.fail(v, fa, nil, "%v", err)
			} else {
				s.job.Location = loc
				s.tz = v
			}
		}
	case KindFunc:
		s.kinds = append(s.kinds, k)
		s.job.Func, _ = d.str(v, fa)
	case "args":
		if isNull(v) {
			s.job.Args = nil
		} else {
			s.job.Args = v
		}
	case KindCommand:
		s.kinds = append(s.kinds, k)
		if dv := deref(v); dv.Kind == yaml.ScalarNode && !isNull(dv) {
			d.fail(v, fa, nil, "want an argv list (no shell), got %s; for a shell write [\"sh\", \"-c\", \"...\"]", describe(v))
			return
		}
		if argv, ok := d.strList(v, fa); ok {
			s.cmd.Argv = argv
		}
	case KindHTTP:
		s.kinds = append(s.kinds, k)
		d.httpBlock(v, fa, &s.http)
	case "env":
		if m, ok := d.strMap(v, fa, s.cmd.Env); ok {
			for name := range m {
				switch {
				case !validEnvName(name):
					d.fail(v, fa, nil, "bad variable name %q", name)
				case strings.HasPrefix(name, "REDCRON_"):
					d.fail(v, fa, nil, "%s: REDCRON_* variables are set by redcron", name)
				}
			}
			s.cmd.Env = m
		}
	case "dir":
		if dir, ok := d.str(v, fa); ok {
			if dir != "" && !filepath.IsAbs(dir) {
				dir = filepath.Join(filepath.Dir(d.file), dir)
			}
			s.cmd.Dir = dir
		}
	case "kill_grace":
		if t, ok := d.duration(v, fa); ok {
			if t <= 0 {
				d.fail(v, fa, nil, "must be positive, got %s", t)
			} else {
				s.cmd.KillGrace = t
			}
		}
	case "output_limit":
		if n, ok := d.integer(v, fa); ok {
			if n <= 0 {
				d.fail(v, fa, nil, "must be a positive number of bytes, got %d", n)
			} else {
				s.cmd.OutputLimit = n
			}
		}
	case "lock_ttl":
		if t, ok := d.duration(v, fa); ok {
			if t < MinLockTTL {
				d.fail(v, fa, nil, "must be at least %s (renewed every lock_ttl/3), got %s", MinLockTTL, t)
			} else {
				s.job.LockTTL = t
			}
		}
	case "overlap":
		if o, ok := d.str(v, fa); ok {
			switch Overlap(o) {
			case OverlapForbid, OverlapAllow, OverlapReplace:
				s.job.Overlap = Overlap(o)
			default:
				d.fail(v, fa, nil, "bad value %q: want forbid, allow or replace", o)
			}
		}
	case "timeout":
		nonNeg("timeout", &s.job.Timeout)
	case "catchup_window":
		nonNeg("catchup_window", &s.job.CatchupWindow)
	case "jitter":
		nonNeg("jitter", &s.job.Jitter)
	case "enabled":
		if b, ok := d.boolean(v, fa); ok {
			s.job.Enabled = b
		}
	case "retry":
		d.retry(v, fa, &s.job.Retry)
	default:
		d.fail(k, fa, nil, "unknown key (known: %s)", jobKeys)
	}
}

func loadZone(name string) (*time.Location, error) {
	switch name {
	case "":
		return nil, errors.New("empty time zone: leave the key out for UTC")
	case "Local":
		return nil, errors.New(`"Local" depends on each machine: name an IANA zone such as Europe/Paris`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: want an IANA name such as Europe/Paris", name)
	}
	return loc, nil
}

func (d *decoder) retry(n *yaml.Node, a at, r *Retry) {
	if deref(n).Kind != yaml.MappingNode {
		d.fail(n, a, nil, "want a mapping {attempts, backoff, max_backoff}, got %s", describe(n))
		return
	}
	for _, kv := range d.pairs(n, a) {
		k, v := kv[0], kv[1]
		fa := a.sub(k.Value)
		switch k.Value {
		case "attempts":
			if x, ok := d.integer(v, fa); ok {
				if x < 1 {
					d.fail(v, fa, nil, "must be at least 1 (the first attempt counts), got %d", x)
				} else {
					r.Attempts = x
				}
			}
		case "backoff", "max_backoff":
			if t, ok := d.duration(v, fa); ok {
				switch {
				case t < 0:
					d.fail(v, fa, nil, "must not be negative, got %s", t)
				case k.Value == "backoff":
					r.Backoff = t
				default:
					r.MaxBackoff = t
				}
			}
		default:
			d.fail(k, fa, nil, "unknown key (known: attempts, backoff, max_backoff)")
		}
	}
	if r.MaxBackoff < r.Backoff {
		d.fail(n, a.sub("max_backoff"), nil, "max_backoff %s is shorter than backoff %s", r.MaxBackoff, r.Backoff)
	}
}

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

func (d *decoder) httpBlock(n *yaml.Node, a at, h *HTTPSpec) {
	if deref(n).Kind != yaml.MappingNode {
		d.fail(n, a, nil, "want a mapping {url, method, headers, body, expect, timeout}, got %s", describe(n))
		return
	}
	for _, kv := range d.pairs(n, a) {
		k, v := kv[0], kv[1]
		fa := a.sub(k.Value)
		switch k.Value {
		case "url":
			if s, ok := d.str(v, fa); ok {
				u, err := url.Parse(s)
				switch {
				case s == "":
					d.fail(v, fa, nil, "empty URL")
				case err != nil:
					d.fail(v, fa, nil, "bad URL: %v", err)
				case u.Scheme != "http" && u.Scheme != "https":
					d.fail(v, fa, nil, "want an absolute http:// or https:// URL, got %q", s)
				case u.Host == "":
					d.fail(v, fa, nil, "URL %q has no host", s)
				default:
					h.URL = s
				}
			}
		case "method":
			if m, ok := d.str(v, fa); ok {
				if up := strings.ToUpper(m); slices.Contains(httpMethods, up) {
					h.Method = up
				} else {
					d.fail(v, fa, nil, "bad method %q: want one of %s", m, strings.Join(httpMethods, ", "))
				}
			}
		case "headers":
			if m, ok := d.strMap(v, fa, h.Headers); ok {
				for name, val := range m {
					switch {
					case !validHeaderName(name):
						d.fail(v, fa, nil, "bad header name %q", name)
					case strings.HasPrefix(strings.ToLower(name), "x-redcron-"):
						d.fail(v, fa, nil, "%s: X-Redcron-* headers are set by redcron", name)
					case strings.ContainsAny(val, "\r\n"):
						d.fail(v, fa, nil, "header %s: value holds a line break", name)
					}
				}
				h.Headers = m
			}
		case "body":
			h.Body, _ = d.str(v, fa)
		case "expect":
			dv := deref(v)
			if dv.Kind != yaml.SequenceNode {
				d.fail(v, fa, nil, "want a list of status codes like [200, 204], got %s", describe(v))
				continue
			}
			codes := make([]int, 0, len(dv.Content))
			for i, c := range dv.Content {
				ca := at{fa.job, fmt.Sprintf("%s[%d]", fa.field, i)}
				if x, ok := d.integer(c, ca); ok {
					if x < 100 || x > 599 {
						d.fail(c, ca, nil, "status %d is not in 100..599", x)
					}
					codes = append(codes, x)
				}
			}
			h.Expect = codes
		case "timeout":
			if t, ok := d.duration(v, fa); ok {
				if t <= 0 {
					d.fail(v, fa, nil, "must be positive (HTTP jobs are always bounded), got %s", t)
				} else {
					h.Timeout = t
				}
			}
		default:
			d.fail(k, fa, nil, "unknown key (known: body, expect, headers, method, timeout, url)")
		}
	}
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}

// job decodes one job over a copy of the defaults and checks it whole.
func (d *decoder) job(defaults *jobState, name string, k, v *yaml.Node) *Job {
	a := at{job: name}
	before := len(d.probs)
	if deref(v).Kind != yaml.MappingNode {
		d.fail(v, a, nil, "want a mapping of job keys, got %s", describe(v))
		return nil
	}
	s := defaults.clone()
	for _, kv := range d.pairs(v, a) {
		d.jobField(s, kv[0], kv[1], a, false)
	}
	kinds := s.kinds
	if len(kinds) == 0 {
		kinds = defaults.kinds
	}
	j := s.job
	j.Name, j.File, j.Line = name, d.file, k.Line

	switch len(kinds) {
	case 0:
		d.fail(k, a.sub("func|command|http"), nil, "missing: a job needs exactly one of func, command or http")
	case 1:
		j.Kind = kinds[0].Value
	default:
		var where []string
		for _, kn := range kinds {
			where = append(where, fmt.Sprintf("%s at line %d", kn.Value, kn.Line))
		}
		d.fail(kinds[1], a.sub(kinds[1].Value), nil, "several kinds (%s): a job has exactly one of func, command or http", strings.Join(where, ", "))
	}
	if j.Kind != KindCommand && j.Kind != "" {
		for _, key := range sortedKeys(s.local) {
			d.fail(s.local[key], a.sub(key), nil, "only for command jobs, this is a %s job", j.Kind)
		}
	}
	if j.Kind != KindFunc && j.Args != nil && j.Kind != "" {
		d.fail(j.Args, a.sub("args"), nil, "only for func jobs, this is a %s job", j.Kind)
	}
	switch j.Kind {
	case KindFunc:
		fn := s.nodes[KindFunc]
		if j.Func == "" {
			if !d.bad[deref(fn)] && deref(fn).Kind == yaml.ScalarNode && !isNull(fn) {
				d.fail(fn, a.sub("func"), nil, "empty function name")
			}
			break
		}
		e := lookupFunc(j.Func)
		if e == nil {
			known := strings.Join(Registered(), ", ")
			if known == "" {
				known = "none"
			}
			d.fail(fn, a.sub("func"), ErrUnknownFunc, "unknown function %q (registered: %s)", j.Func, known)
			break
		}
		j.fn = e
		if _, ps := e.decode(j.Args); len(ps) > 0 {
			for _, p := range ps {
				d.probs = append(d.probs, &Problem{File: d.file, Line: p.line, Job: name, Field: "args", Msg: p.msg})
			}
		}
	case KindCommand:
		cmd := s.cmd
		switch {
		case len(cmd.Argv) == 0 && !d.bad[deref(s.nodes[KindCommand])]:
			if len(d.probs) == before || deref(s.nodes[KindCommand]).Kind == yaml.SequenceNode {
				d.fail(s.nodes[KindCommand], a.sub("command"), nil, "empty command: want an argv list such as [\"/usr/local/bin/backup\", \"--fast\"]")
			}
		case len(cmd.Argv) > 0 && cmd.Argv[0] == "":
			d.fail(s.nodes[KindCommand], a.sub("command"), nil, "empty program name (argv[0])")
		case len(cmd.Argv) > 0 && !strings.ContainsRune(cmd.Argv[0], '/'):
			if _, err := exec.LookPath(cmd.Argv[0]); err != nil {
				d.warn(s.nodes[KindCommand], a.sub("command"), "%q is not in this machine's PATH", cmd.Argv[0])
			}
		}
		j.Command = &cmd
	case KindHTTP:
		h := s.http
		if h.URL == "" && len(d.probs) == before {
			d.fail(s.nodes[KindHTTP], a.sub("http.url"), nil, "missing: an absolute http:// or https:// URL")
		}
		j.HTTP = &h
	}

	specNode := s.nodes["schedule"]
	switch {
	case specNode == nil:
		d.fail(k, a.sub("schedule"), nil, "missing: a cron spec such as \"*/5 * * * *\" or \"@every 30s\"")
	case j.Spec != "" || (!d.bad[deref(specNode)] && deref(specNode).Kind == yaml.ScalarNode && !isNull(specNode)):
		sched, err := schedule.Parse(j.Spec, j.Location)
		if err != nil {
			d.fail(specNode, a.sub("schedule"), ErrBadSchedule, "%s", strings.TrimPrefix(err.Error(), "schedule: "))
			break
		}
		j.Schedule = sched
		if iv := sched.Interval(); j.Jitter > 0 && iv > 0 && j.Jitter >= iv {
			// A slot claimed after the next one would be refused: the
			// job's high-water slot never goes back.
			jn := s.nodes["jitter"]
			if jn == nil {
				jn = k
			}
			d.fail(jn, a.sub("jitter"), nil, "jitter %s is not shorter than the schedule's shortest interval %s: a slot's claim could come after the next slot's", j.Jitter, iv)
		}
	}
	if j.Command != nil && j.LockTTL > 0 && j.Command.KillGrace > j.LockTTL/3 {
		kn := s.nodes["kill_grace"]
		if kn == nil {
			kn = k
		}
		d.warn(kn, a.sub("kill_grace"), "kill_grace %s is longer than lock_ttl/3 (%s): a command that ignores SIGTERM may still run when its lease expires and another replica starts the job", j.Command.KillGrace, j.LockTTL/3)
	}
	if len(d.probs) > before {
		return nil
	}
	return &j
}

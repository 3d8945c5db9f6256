package jobs

import (
	"gopkg.in/yaml.v3"
)

// RedisPasswordEnv names the environment variable that, when set and not
// empty, is the Redis password (over redis.password and
// redis.password_file): it keeps the password out of the file and out of
// ps. A password in a Redis URL still wins for that URL.
const RedisPasswordEnv = "REDCRON_REDIS_PASSWORD"

// topDraft is the file's top level while it is decoded: the config being
// built, and the defaults: and jobs: blocks, decoded after every other key.
type topDraft struct {
	cfg      *Config
	defaults *yaml.Node
	jobs     *yaml.Node
}

// topKeys are the top-level keys of jobs.yaml.
var topKeys = keyTable[*topDraft]{
	{"redis", func(d *decoder, t *topDraft, _, v *yaml.Node, _ at) { d.redis(v, &t.cfg.Redis) }},
	{"shutdown_grace", func(d *decoder, t *topDraft, _, v *yaml.Node, a at) {
		if g, ok := d.nonNegDuration(v, a); ok {
			t.cfg.ShutdownGrace = g
		}
	}},
	{"defaults", func(_ *decoder, t *topDraft, _, v *yaml.Node, _ at) { t.defaults = v }},
	{"jobs", func(_ *decoder, t *topDraft, _, v *yaml.Node, _ at) { t.jobs = v }},
}

// topLevel decodes the root mapping: the top-level keys, then the defaults:
// block, then each job over the defaults. It returns the config, complete
// only when no problem was found. With s, the defaults and the jobs were
// decoded as the file was read (see parseStream), and s.redo is set if the
// root does not hold them as decoded.
func (d *decoder) topLevel(root *yaml.Node, s *jobStream) *Config {
	t := &topDraft{cfg: &Config{File: d.file, Redis: defaultRedis()}}
	var streamed []*Problem
	if s != nil {
		// The stream's warnings come after the top level's, as they do
		// when the jobs are decoded after it.
		streamed, d.warns = d.warns, nil
	}
	decodeBlock(d, root, at{}, topKeys, t)
	if p, ok := d.lookup(RedisPasswordEnv); ok && p != "" {
		// The environment's password wins over the file's, as
		// REDCRON_REDIS_URL wins over its URL, and stays out of ps and
		// of the file.
		t.cfg.Redis.Password = p
		d.secrets.Add(p, "${"+RedisPasswordEnv+"}")
	}
	if s != nil {
		d.warns = append(d.warns, streamed...)
		s.redo = s.redo || t.defaults != s.defaultsNode || t.jobs != s.jobsNode
		t.cfg.Jobs = s.jobs
		return t.cfg
	}
	defaults := d.defaults(t.defaults)
	if t.jobs == nil {
		d.fail(root, at{}, nil, "no jobs: the file has no jobs: block")
		return t.cfg
	}
	d.jobs(t.jobs, defaults, t.cfg)
	return t.cfg
}

// defaults decodes the defaults: block (n may be nil) into a draft that
// every job starts from. It accepts every per-job key (fields.go).
func (d *decoder) defaults(n *yaml.Node) *jobDraft {
	s := newJobDraft()
	s.defaults = true
	if n == nil || isNull(n) {
		return s
	}
	a := at{job: defaultsBlock}
	if m := deref(n); m.Kind != yaml.MappingNode {
		d.fail(n, a, nil, "want a mapping of per-job keys, got %s", describe(n))
		return s
	}
	for _, kv := range d.pairs(n, a) {
		d.jobField(s, kv[0], kv[1], a)
	}
	return s
}

// usableJobName reports whether name is 1 to MaxNameLen of A-Z a-z 0-9 _ . -
// (a loop, not a regexp: it runs once per job, 100,000 times in a large
// file).
func usableJobName(name string) bool {
	if name == "" || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// jobs decodes the jobs: block, a mapping of job name to job, into
// cfg.Jobs: names are checked here, each job in jobblock.go.
func (d *decoder) jobs(n *yaml.Node, defaults *jobDraft, cfg *Config) {
	jm := deref(n)
	switch {
	case isNull(jm) || (jm.Kind == yaml.MappingNode && len(jm.Content) == 0):
		d.fail(n, at{field: "jobs"}, nil, "no jobs: the jobs: block is empty")
		return
	case jm.Kind != yaml.MappingNode:
		d.fail(n, at{field: "jobs"}, nil, "want a mapping of job name to job, got %s", describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(jm.Content); i += 2 {
		if j := d.jobEntry(defaults, seen, jm.Content[i], jm.Content[i+1]); j != nil {
			cfg.Jobs = append(cfg.Jobs, j)
		}
	}
}

// jobEntry decodes the entry k: v of the jobs: block over defaults, seen
// holding the line of each job name before it. It returns nil on a
// problem, which it reports.
func (d *decoder) jobEntry(defaults *jobDraft, seen map[string]int, k, v *yaml.Node) *Job {
	name := k.Value
	a := at{job: name}
	if k.Kind != yaml.ScalarNode {
		d.fail(k, at{field: "jobs"}, nil, "a job name must be a string, got %s", describe(k))
		return nil
	}
	if first, dup := seen[name]; dup {
		d.fail(k, a.sub("name"), nil, "duplicate job name (first declared at line %d)", first)
		return nil
	}
	seen[name] = k.Line
	if !usableJobName(name) {
		d.fail(k, a.sub("name"), nil, "unusable job name %q: use 1 to %d of A-Z a-z 0-9 _ . - (it goes into Redis keys)", name, MaxNameLen)
	}
	return d.job(defaults, name, k, v)
}

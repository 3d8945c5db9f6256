package jobs

import (
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// redisDraft is the redis: block while it is decoded: the config, and the
// connection modes set so far (at most one is allowed).
type redisDraft struct {
	r        *RedisConfig
	modes    []string
	password string // the key that set r.Password: password or password_file
	// ackNode is the min_replicas_ack value, for a message that blames it.
	ackNode *yaml.Node
}

// redisModeKeys are the keys that choose how to reach Redis; a redis: block
// sets at most one of them.
var redisModeKeys = keyTable[*redisDraft]{
	{"url", (*decoder).redisURLKey},
	{"sentinel", (*decoder).sentinelKey},
	{"cluster", (*decoder).clusterKey},
	{"quorum", (*decoder).quorumKey},
}

// redisKeys are the keys of the redis: block.
var redisKeys = slices.Concat(redisModeKeys, keyTable[*redisDraft]{
	{"username", func(d *decoder, s *redisDraft, _, v *yaml.Node, a at) { s.r.Username, _ = d.str(v, a) }},
	{"password", (*decoder).passwordKey},
	{"password_file", (*decoder).passwordKey},
	{"tls", (*decoder).tlsKey},
	{"prefix", (*decoder).prefixKey},
	{"dial_timeout", redisTimeout(func(r *RedisConfig) *time.Duration { return &r.DialTimeout })},
	{"read_timeout", redisTimeout(func(r *RedisConfig) *time.Duration { return &r.ReadTimeout })},
	{"write_timeout", redisTimeout(func(r *RedisConfig) *time.Duration { return &r.WriteTimeout })},
	{"max_clock_skew", func(d *decoder, s *redisDraft, _, v *yaml.Node, a at) {
		if t, ok := d.nonNegDuration(v, a); ok {
			s.r.MaxClockSkew = t
		}
	}},
	{"min_replicas_ack", func(d *decoder, s *redisDraft, _, v *yaml.Node, a at) {
		if x, ok := d.integer(v, a); ok {
			if x < 0 {
				d.fail(v, a, nil, "must not be negative, got %d", x)
				return
			}
			s.r.MinReplicasAck, s.ackNode = x, v
		}
	}},
	{"ack_timeout", redisTimeout(func(r *RedisConfig) *time.Duration { return &r.AckTimeout })},
	{"batch_scripts", func(d *decoder, s *redisDraft, _, v *yaml.Node, a at) {
		if b, ok := d.boolean(v, a); ok {
			s.r.Unbatched = !b
		}
	}},
})

// sentinelKeys are the keys of the redis.sentinel: block.
var sentinelKeys = keyTable[*SentinelConfig]{
	{"master", func(d *decoder, s *SentinelConfig, _, v *yaml.Node, a at) { s.Master, _ = d.str(v, a) }},
	{"addrs", func(d *decoder, s *SentinelConfig, _, v *yaml.Node, a at) {
		if l, ok := d.strList(v, a); ok {
			for i, addr := range l {
				d.hostPort(deref(v).Content[i], a.index(i), addr)
			}
			s.Addrs = l
		}
	}},
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// redis decodes the redis: block into r (which holds the defaults).
func (d *decoder) redis(n *yaml.Node, r *RedisConfig) {
	a := at{field: "redis"}
	if isNull(n) {
		return
	}
	if deref(n).Kind != yaml.MappingNode {
		d.fail(n, a, nil, "want a mapping, got %s", describe(n))
		return
	}
	s := &redisDraft{r: r}
	decodeBlock(d, n, a, redisKeys, s)
	if len(s.modes) > 1 {
		d.fail(n, a, nil, "set only one of %s, got %s", joinWords(redisModeKeys.names(), "and"), strings.Join(s.modes, " and "))
	}
	if strings.HasPrefix(r.URL, "rediss://") {
		r.TLS = true
	}
	if r.MinReplicasAck > 0 && (len(r.Cluster) > 0 || len(r.Quorum) > 0) {
		d.fail(s.ackNode, a.sub("min_replicas_ack"), nil,
			"works with url and sentinel only: on cluster, WAIT cannot follow a claim to its node; quorum mode survives the loss of a minority of masters instead")
	}
}

func (d *decoder) redisURLKey(s *redisDraft, k, v *yaml.Node, a at) {
	if isNull(v) {
		return // url: ~ means unset, like an empty string
	}
	if u, ok := d.str(v, a); ok && u != "" && d.redisURL(v, a, u) {
		s.r.URL = u
		s.modes = append(s.modes, k.Value)
	}
}

func (d *decoder) sentinelKey(s *redisDraft, k, v *yaml.Node, a at) {
	d.sentinel(v, a, s.r)
	if s.r.Sentinel != nil {
		s.modes = append(s.modes, k.Value)
	}
}

func (d *decoder) clusterKey(s *redisDraft, k, v *yaml.Node, a at) {
	if l, ok := d.strList(v, a); ok && len(l) > 0 {
		for i, addr := range l {
			d.hostPort(deref(v).Content[i], a.index(i), addr)
		}
		s.r.Cluster = l
		s.modes = append(s.modes, k.Value)
	}
}

func (d *decoder) quorumKey(s *redisDraft, k, v *yaml.Node, a at) {
	if l, ok := d.strList(v, a); ok && len(l) > 0 {
		for i, u := range l {
			d.redisURL(deref(v).Content[i], a.index(i), u)
		}
		switch {
		case len(l) < MinQuorum:
			d.fail(v, a, nil, "quorum mode needs at least %d independent masters, got %d (a single master: use url)", MinQuorum, len(l))
		case len(l)%2 == 0:
			d.warn(v, a, "an even number of masters (%d) tolerates no more failures than %d", len(l), len(l)-1)
		}
		s.r.Quorum = l
		s.modes = append(s.modes, k.Value)
	}
}

func (d *decoder) prefixKey(s *redisDraft, _, v *yaml.Node, a at) {
	if p, ok := d.str(v, a); ok {
		if !prefixRE.MatchString(p) {
			d.fail(v, a, nil, "bad prefix %q: use 1 to 64 of A-Z a-z 0-9 _ . : - (no braces: keys carry a {job} hash tag)", p)
		} else {
			s.r.Prefix = p
		}
	}
}

// redisTimeout decodes one of the per-call timeouts, which must be positive.
func redisTimeout(field func(*RedisConfig) *time.Duration) func(*decoder, *redisDraft, *yaml.Node, *yaml.Node, at) {
	return func(d *decoder, s *redisDraft, _, v *yaml.Node, a at) {
		if t, ok := d.duration(v, a); ok {
			if t <= 0 {
				d.fail(v, a, nil, "must be positive (every Redis call has a timeout), got %s", t)
				return
			}
			*field(s.r) = t
		}
	}
}

// redisURL checks a Redis URL; its password is a secret, and messages
// show the URL without it.
func (d *decoder) redisURL(n *yaml.Node, a at, s string) bool {
	d.secrets.AddURLPassword(s, RedactedLabel)
	u, err := ParseSecretURL(s)
	if err != nil {
		d.fail(n, a, nil, "bad URL %s", strings.TrimPrefix(err.Error(), ErrBadURL.Error()+": "))
		return false
	}
	shown := strconv.Quote(RedactURL(s))
	switch u.Scheme {
	case "redis", "rediss":
		if u.Host == "" {
			d.fail(n, a, nil, "bad URL %s: no host", shown)
			return false
		}
	case "unix":
		if u.Path == "" {
			d.fail(n, a, nil, "bad URL %s: no socket path", shown)
			return false
		}
	default:
		d.fail(n, a, nil, "bad URL %s: want redis://, rediss:// or unix://", shown)
		return false
	}
	return true
}

// passwordKey decodes password (the password itself) or password_file (a
// file holding it, relative to the config file, read now; one trailing
// line break is dropped), at most one of them. The password is a secret.
func (d *decoder) passwordKey(s *redisDraft, k, v *yaml.Node, a at) {
	if s.password != "" {
		d.fail(k, a, nil, "set only one of password and password_file, got both")
		return
	}
	p, ok := d.str(v, a)
	if !ok || p == "" {
		return
	}
	if k.Value == "password_file" {
		if p, ok = d.readPasswordFile(v, a, p); !ok {
			return
		}
	}
	s.password = k.Value
	s.r.Password = p
	d.secrets.Add(p, RedactedLabel)
}

// maxPasswordFile bounds what is read of a password_file.
const maxPasswordFile = 4 << 10

// readPasswordFile reads a password_file: a regular file, relative to the
// config file's directory, of at most 4 KiB, not empty.
func (d *decoder) readPasswordFile(v *yaml.Node, a at, path string) (string, bool) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(d.file), path)
	}
	data, err := readSmallFile(path, maxPasswordFile)
	if err != nil {
		d.fail(v, a, ErrPasswordFile, "%v", err)
		return "", false
	}
	p := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if p == "" {
		d.fail(v, a, ErrPasswordFile, "%s is empty", path)
		return "", false
	}
	return p, true
}

func (d *decoder) hostPort(n *yaml.Node, a at, s string) {
	if _, _, err := net.SplitHostPort(s); err != nil {
		d.fail(n, a, nil, "want host:port, got %q", s)
	}
}

// sentinel decodes the redis.sentinel: block into r.Sentinel.
func (d *decoder) sentinel(n *yaml.Node, a at, r *RedisConfig) {
	if deref(n).Kind != yaml.MappingNode {
		d.fail(n, a, nil, "want a mapping %s, got %s", sentinelKeys.shape(), describe(n))
		return
	}
	s := &SentinelConfig{}
	decodeBlock(d, n, a, sentinelKeys, s)
	if s.Master == "" {
		d.fail(n, a.sub("master"), nil, "missing: the monitored master's name")
	}
	if len(s.Addrs) == 0 {
		d.fail(n, a.sub("addrs"), nil, "missing: at least one sentinel host:port")
	}
	r.Sentinel = s
}

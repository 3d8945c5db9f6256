package jobs

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"gopkg.in/yaml.v3"
)

// jobKey is one per-job key of jobs.yaml, accepted in a job and in the
// defaults: block.
type jobKey struct {
	name string
	// kind marks the keys that choose the job's kind (func, command, http):
	// a job has exactly one of them.
	kind bool
	// only is the one job kind that takes the key ("" for every kind). A job
	// of another kind that sets the key itself is refused ("only for ...
	// jobs"); set in defaults:, the key is ignored by such jobs, unless its
	// decoder says otherwise with jobDraft.restrict (args does).
	only string
	// decode decodes the key's value v into the draft; a locates v.
	decode func(d *decoder, s *jobDraft, k, v *yaml.Node, a at)
}

// jobKeyTable is the one table of per-job keys: decoding, the "known:" list of
// unknown-key messages, the kind keys and the kind-restricted keys all come
// from it. The decoders live with their blocks: funcblock.go,
// commandblock.go, httpblock.go, retryblock.go, historyblock.go,
// notifyblock.go; the others are below.
var jobKeyTable = [numJobKeys]jobKey{
	{name: "schedule", decode: func(d *decoder, s *jobDraft, _, v *yaml.Node, a at) { s.job.Spec = common(d.str(v, a)) }},
	{name: "timezone", decode: decodeTimezone},
	{name: "enabled", decode: func(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
		if b, ok := d.boolean(v, a); ok {
			s.job.Enabled = b
		}
	}},
	{name: "lock_ttl", decode: decodeLockTTL},
	{name: "overlap", decode: decodeOverlap},
	{name: "timeout", decode: nonNegField(func(j *Job) *time.Duration { return &j.Timeout })},
	{name: "catchup_window", decode: nonNegField(func(j *Job) *time.Duration { return &j.CatchupWindow })},
	{name: "jitter", decode: nonNegField(func(j *Job) *time.Duration { return &j.Jitter })},
	{name: "retry", decode: func(d *decoder, s *jobDraft, _, v *yaml.Node, a at) { d.retry(v, a, &s.job.Retry) }},
	{name: "history", decode: func(d *decoder, s *jobDraft, _, v *yaml.Node, a at) { d.history(v, a, &s.job.History) }},
	{name: "notify", decode: decodeNotify},
	{name: "output_tail", decode: func(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
		if x, ok := d.integer(v, a); ok {
			if x < 0 || x > MaxOutputTail {
				d.fail(v, a, nil, "want 0 to %d bytes, got %d", MaxOutputTail, x)
			} else {
				s.job.OutputTail = x
			}
		}
	}},

	{name: KindFunc, kind: true, decode: decodeFunc},
	{name: "args", only: KindFunc, decode: decodeArgs},

	{name: KindCommand, kind: true, decode: decodeCommand},
	{name: "env", only: KindCommand, decode: decodeEnv},
	{name: "dir", only: KindCommand, decode: decodeDir},
	{name: "kill_grace", only: KindCommand, decode: decodeKillGrace},
	{name: "output_limit", only: KindCommand, decode: decodeOutputLimit},

	{name: KindHTTP, kind: true, decode: func(d *decoder, s *jobDraft, _, v *yaml.Node, a at) { d.httpBlock(v, a, &s.http) }},
}

// numJobKeys is the number of per-job keys: the size of jobKeyTable and
// of a draft's keyNodes (a test checks that every entry is filled).
const numJobKeys = 20

// jobKeyIndexes maps each per-job key's name to its index in jobKeyTable;
// filled by init, as the table's decoders use it (through jobKeyIndex).
var jobKeyIndexes map[string]int

func init() {
	jobKeyIndexes = make(map[string]int, len(jobKeyTable))
	for i, k := range jobKeyTable {
		jobKeyIndexes[k.name] = i
	}
}

// jobKeyIndex is the index of the key called name in jobKeyTable, or -1.
func jobKeyIndex(name string) int {
	if i, ok := jobKeyIndexes[name]; ok {
		return i
	}
	return -1
}

// keyNodes holds, for each per-job key (indexed as jobKeyTable), the node
// that set it or nil. An array, not a map: each job's draft starts as a
// copy of the defaults' (reset), which with maps cost two a job.
type keyNodes [numJobKeys]*yaml.Node

// get returns the node that set the key called name (a key of the table).
func (n *keyNodes) get(name string) *yaml.Node { return n[jobKeyIndex(name)] }

// knownJobKeys lists every per-job key, sorted, for "unknown key (known: ...)".
func knownJobKeys() string {
	names := make([]string, len(jobKeyTable))
	for i, k := range jobKeyTable {
		names[i] = k.name
	}
	return knownList(names)
}

// kindKeys names the kind keys in table order: func, command, http.
func kindKeys() []string {
	var names []string
	for _, k := range jobKeyTable {
		if k.kind {
			names = append(names, k.name)
		}
	}
	return names
}

// restrictedKeyList is restrictedKeys(), made once (the decoder checks
// every job against it).
var restrictedKeyList = restrictedKeys()

// restrictedKeys returns the keys that only one kind takes, grouped by that
// kind and sorted by name within it, the order their problems are reported in.
func restrictedKeys() []*jobKey {
	var out []*jobKey
	for i := range jobKeyTable {
		if jobKeyTable[i].only != "" {
			out = append(out, &jobKeyTable[i])
		}
	}
	slices.SortFunc(out, func(a, b *jobKey) int {
		return cmp.Or(cmp.Compare(a.only, b.only), cmp.Compare(a.name, b.name))
	})
	return out
}

// jobDraft accumulates one job (or the defaults: block) while decoding.
type jobDraft struct {
	job      Job
	cmd      CommandSpec
	http     HTTPSpec
	defaults bool         // the defaults: block, not a job
	kinds    []*yaml.Node // the kind keys (func, command, http) set here, in order
	nodes    keyNodes     // key -> value node that set it (for later messages)
	// restricted holds the kind-restricted keys in effect -> the node that a
	// job of another kind is blamed at.
	restricted keyNodes
}

// newJobDraft starts a draft from the built-in defaults (config.go).
func newJobDraft() *jobDraft {
	return &jobDraft{
		job: Job{
			Location:      time.UTC,
			LockTTL:       DefaultLockTTL,
			Overlap:       OverlapForbid,
			CatchupWindow: DefaultCatchupWindow,
			Enabled:       true,
			Retry:         Retry{Attempts: DefaultRetryAttempts, Backoff: DefaultRetryBackoff, MaxBackoff: DefaultRetryMax},
			History:       History{Keep: DefaultHistoryKeep, MaxAge: DefaultHistoryMaxAge},
			OutputTail:    DefaultOutputTail,
		},
		cmd:  CommandSpec{KillGrace: DefaultKillGrace, OutputLimit: DefaultOutputLimit},
		http: HTTPSpec{Method: DefaultHTTPMethod, Timeout: DefaultHTTPTimeout},
	}
}

// reset makes s a job's draft that starts from the defaults: block's
// draft, keeping the backing array of s's kinds.
func (s *jobDraft) reset(defaults *jobDraft) {
	kinds := s.kinds[:0]
	*s = *defaults
	s.defaults = false
	s.kinds = kinds
}

// restrict records that key, when in effect, is blamed at n on a job of a
// kind that does not take it; n == nil lifts it.
func (s *jobDraft) restrict(key string, n *yaml.Node) {
	s.restricted[jobKeyIndex(key)] = n
}

// jobField decodes one per-job key into s. Single-field rules are checked
// by the key's decoder, so a bad value in defaults: is reported once, at
// its line; whole-job rules are in jobblock.go.
func (d *decoder) jobField(s *jobDraft, k, v *yaml.Node, a at) {
	fa := a.sub(k.Value)
	i := jobKeyIndex(k.Value)
	if i < 0 {
		d.fail(k, fa, nil, "unknown key (known: %s)", knownJobKeys())
		return
	}
	key := &jobKeyTable[i]
	s.nodes[i] = v
	if key.kind {
		s.kinds = append(s.kinds, k)
	}
	if key.only != "" && !s.defaults {
		s.restricted[i] = k // refused later unless the job is of that kind
	}
	key.decode(d, s, k, v, fa)
}

func decodeTimezone(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
	if name, ok := d.str(v, a); ok {
		if loc, err := loadZone(name); err != nil {
			d.fail(v, a, nil, "%v", err)
		} else {
			s.job.Location = loc
		}
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

func decodeLockTTL(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
	if t, ok := d.duration(v, a); ok {
		if t < MinLockTTL {
			d.fail(v, a, nil, "must be at least %s (renewed every lock_ttl/3), got %s", MinLockTTL, t)
		} else {
			s.job.LockTTL = t
		}
	}
}

func decodeOverlap(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
	if o, ok := d.str(v, a); ok {
		switch Overlap(o) {
		case OverlapForbid, OverlapAllow, OverlapReplace:
			s.job.Overlap = Overlap(o)
		default:
			d.fail(v, a, nil, "bad value %q: want forbid, allow or replace", o)
		}
	}
}

// nonNegField decodes a job duration that must not be negative.
func nonNegField(field func(*Job) *time.Duration) func(*decoder, *jobDraft, *yaml.Node, *yaml.Node, at) {
	return func(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
		if t, ok := d.nonNegDuration(v, a); ok {
			*field(&s.job) = t
		}
	}
}

package jobs

import (
	"time"
	"unique"

	"gopkg.in/yaml.v3"
)

// Typed scalar helpers of the decoder: each reports its own problem at the
// node and returns ok=false. A node already reported (a bad ${VAR}) is
// refused silently.

func (d *decoder) str(n *yaml.Node, a at) (string, bool) {
	n = deref(n)
	if d.bad[n] {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.fail(n, a, nil, "want a string, got %s", describe(n))
		return "", false
	}
	d.readAs(n, d.textual)
	return n.Value, true
}

// readAs notes in set (d.typed or d.textual) that n was read, for the
// scalars ${VAR} changed: only those can be secrets (collectSecrets), and
// noting every scalar cost a map entry per scalar of a 100,000-job file.
func (d *decoder) readAs(n *yaml.Node, set map[*yaml.Node]bool) {
	if d.expanded[n] {
		set[n] = true
	}
}

// common is v (a str result) interned, for a text that many jobs repeat
// (a function's name, a schedule): 100,000 jobs then hold a few copies.
func common(v string, _ bool) string { return unique.Make(v).Value() }

func (d *decoder) duration(n *yaml.Node, a at) (time.Duration, bool) {
	n = deref(n)
	if d.bad[n] {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.fail(n, a, nil, "want a duration like 30s or 1m30s, got %s", describe(n))
		return 0, false
	}
	d.readAs(n, d.typed)
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.fail(n, a, nil, "bad duration %q: want a number with a unit, like 30s or 1m30s", n.Value)
		return 0, false
	}
	return v, true
}

// nonNegDuration is a duration that must not be negative.
func (d *decoder) nonNegDuration(n *yaml.Node, a at) (time.Duration, bool) {
	t, ok := d.duration(n, a)
	if ok && t < 0 {
		d.fail(n, a, nil, "must not be negative, got %s", t)
		return 0, false
	}
	return t, ok
}

func (d *decoder) integer(n *yaml.Node, a at) (int, bool) {
	n = deref(n)
	if d.bad[n] {
		return 0, false
	}
	d.readAs(n, d.typed)
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
	d.readAs(n, d.typed)
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
		s, good := d.str(c, a.index(i))
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

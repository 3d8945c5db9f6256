package jobs

import (
	"bytes"

	"gopkg.in/yaml.v3"
)

// This file decodes each job of a plain file as the parser reads it
// (${VAR} expanded in it first), so that a job's nodes are garbage, or
// reused, once it is built instead of the whole file's tree staying alive
// beside the jobs: with 100,000 jobs the tree was 98 MiB of a replica's
// peak, the jobs 20 MiB. The result is the one the tree gives; any file
// for which that is not plain is decoded again from its tree (see
// parseStream).

// streamable reports whether data may be decoded as it is read: it has no
// '#' (a comment sends the file to yaml.v3, which fastParse only finds at
// the comment, possibly after most jobs).
func streamable(data []byte) bool {
	return bytes.IndexByte(data, '#') < 0
}

// jobStream is a jobSink that decodes each job over the defaults: block
// read before the jobs: block.
type jobStream struct {
	d *decoder
	// defaultsNode is the value of the first defaults: key before the
	// jobs: block (nil if none), decoded into defaults; jobsNode is the
	// jobs: block's mapping.
	defaultsNode, jobsNode *yaml.Node
	defaults               *jobDraft
	seen                   map[string]int // line of each job name decoded
	// expanded is how many top-level values before the jobs: block had
	// ${VAR} expanded (see expandPairs).
	expanded int
	jobs     []*Job
	// redo is set when the file must be decoded from its tree instead:
	// the root's defaults: or jobs: is not the one the stream decoded.
	redo bool
}

func (s *jobStream) begin(m *yaml.Node, before []*yaml.Node) {
	s.jobsNode = m
	s.expanded = s.d.expandPairs(before, 0)
	for i := 0; i+1 < len(before); i += 2 {
		if before[i].Kind == yaml.ScalarNode && before[i].Value == "defaults" {
			s.defaultsNode = before[i+1]
			break
		}
	}
	s.defaults = s.d.defaults(s.defaultsNode)
	s.seen = map[string]int{}
}

// job expands ${VAR} in one job, as expandTree does over the tree, and
// decodes it. A Job keeps no node of the file but its Args, the draft is
// reset at every job, and the decoder keeps the nodes where ${VAR} was
// expanded or failed: the nodes of a job with neither are done with.
func (s *jobStream) job(k, v *yaml.Node) (done bool) {
	d := s.d
	marks := len(d.expanded) + len(d.bad) + len(d.expansions)
	d.expandTree(v, []string{"jobs", k.Value})
	j := d.jobEntry(s.defaults, s.seen, k, v)
	if j != nil {
		s.jobs = append(s.jobs, j)
	}
	kept := len(d.expanded)+len(d.bad)+len(d.expansions) > marks
	return !kept && (j == nil || j.Args == nil)
}

func (s *jobStream) failed() bool { return len(s.d.probs) > 0 }

// expandPairs expands ${VAR} in the values of the mapping pairs kv from
// the from-th pair on, as expandTree does for the root's, and returns how
// many pairs kv holds.
func (d *decoder) expandPairs(kv []*yaml.Node, from int) int {
	for i := 2 * from; i+1 < len(kv); i += 2 {
		d.expandTree(kv[i+1], []string{kv[i].Value})
	}
	return len(kv) / 2
}

// parseStream decodes data, a streamable file, with the jobs expanded
// and decoded as fastParseStream reads them. It returns ok false, and the
// file must be decoded from its tree, if data is outside fastParse's
// subset (then outside is true: yaml.v3 reads it), has no jobs: block
// mapping, has a defaults: block after its jobs: block, or has any
// problem (so that every message is the tree's, in its order; the parse
// stops at the first job with one).
func parseStream(file string, data []byte, lookupEnv func(string) (string, bool)) (cfg *Config, ok, outside bool) {
	d := newDecoder(file, lookupEnv)
	s := &jobStream{d: d}
	doc, fast := fastParseStream(data, s)
	switch {
	case !fast && !s.failed():
		return nil, false, true
	case !fast || s.jobsNode == nil || s.failed():
		return nil, false, false
	}
	root := doc.Content[0]
	d.expandPairs(root.Content, s.expanded) // the top-level values after the jobs: block
	cfg = d.topLevel(root, s)
	d.collectSecrets()
	if s.redo || len(d.probs) > 0 {
		return nil, false, false
	}
	return d.complete(cfg), true, false
}

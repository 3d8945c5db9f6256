package jobs

import (
	"bytes"

	"gopkg.in/yaml.v3"
)

// This file decodes each job of a plain file as the parser reads it, so
// that a job's nodes are garbage once it is built instead of the whole
// file's tree staying alive beside the jobs: with 100,000 jobs the tree
// was 98 MiB of a replica's peak, the jobs 20 MiB. The result is the one
// the tree gives; any file for which that is not plain is decoded again
// from its tree (see parseStream).

// streamable reports whether data may be decoded as it is read: it has no
// ${VAR} (expanded over the whole tree before anything is decoded) and no
// '#' (a comment sends the file to yaml.v3, which fastParse only finds at
// the comment, possibly after most jobs).
func streamable(data []byte) bool {
	return bytes.IndexByte(data, '#') < 0 && !bytes.Contains(data, []byte("${"))
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
	jobs                   []*Job
	// redo is set when the file must be decoded from its tree instead:
	// the root's defaults: or jobs: is not the one the stream decoded.
	redo bool
}

func (s *jobStream) begin(m *yaml.Node, before []*yaml.Node) {
	s.jobsNode = m
	for i := 0; i+1 < len(before); i += 2 {
		if before[i].Kind == yaml.ScalarNode && before[i].Value == "defaults" {
			s.defaultsNode = before[i+1]
			break
		}
	}
	s.defaults = s.d.defaults(s.defaultsNode)
	s.seen = map[string]int{}
}

// job decodes one job. A Job keeps no node of the file but its Args,
// and no other state keeps any of a streamed job's (no ${VAR} was
// expanded, and the draft is reset at every job): the nodes of a job
// without Args are done with.
func (s *jobStream) job(k, v *yaml.Node) (done bool) {
	j := s.d.jobEntry(s.defaults, s.seen, k, v)
	if j != nil {
		s.jobs = append(s.jobs, j)
	}
	return j == nil || j.Args == nil
}

// parseStream decodes data, a streamable file, with the jobs decoded as
// fastParseStream reads them. It returns ok false, and the file must be
// decoded from its tree, if data is outside fastParse's subset, has no
// jobs: block mapping, has a defaults: block after its jobs: block, or has
// any problem (so that every message is the tree's, in its order).
func parseStream(file string, data []byte, lookupEnv func(string) (string, bool)) (*Config, bool) {
	d := newDecoder(file, lookupEnv)
	s := &jobStream{d: d}
	doc, ok := fastParseStream(data, s)
	if !ok || s.jobsNode == nil || len(d.probs) > 0 {
		return nil, false
	}
	cfg := d.topLevel(doc.Content[0], s)
	d.collectSecrets()
	if s.redo || len(d.probs) > 0 {
		return nil, false
	}
	return d.complete(cfg), true
}

package jobs

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// The keys of func jobs, `func:` and `args:`, and the check of a func job
// whole: its function is registered and its args decode into the
// function's type (once, kept on the Job: see funcargs.go).

func decodeFunc(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
	s.job.Func = common(d.str(v, a))
}

// decodeArgs keeps the args node, decoded when the job is whole. Unlike the
// command-only keys, args given in defaults: are refused too on a job of
// another kind (blamed at the value), unless the job sets `args: ~`.
func decodeArgs(_ *decoder, s *jobDraft, _, v *yaml.Node, _ at) {
	if isNull(v) {
		s.job.Args = nil
		s.restrict("args", nil)
		return
	}
	s.job.Args = v
	s.restrict("args", v)
}

// finishFunc resolves the job's function and decodes its args once, into
// j.args, reporting every problem in them.
func (d *decoder) finishFunc(s *jobDraft, j *Job, a at) {
	fn := s.nodes.get(KindFunc)
	if j.Func == "" {
		if !d.bad[deref(fn)] && deref(fn).Kind == yaml.ScalarNode && !isNull(fn) {
			d.fail(fn, a.sub("func"), nil, "empty function name")
		}
		return
	}
	e := lookupFunc(j.Func)
	if e == nil {
		known := strings.Join(Registered(), ", ")
		if known == "" {
			known = "none"
		}
		d.fail(fn, a.sub("func"), ErrUnknownFunc, "unknown function %q (registered: %s)", j.Func, known)
		return
	}
	j.fn = e
	if j.Args == nil { // no args: decodedArgs gives the function's shared zero value
		_, ps := e.cache.get(e, nil)
		d.argProblems(a, ps)
		return
	}
	args := &funcArgs{from: j.Args}
	if _, ps := args.get(e, j.Args); len(ps) > 0 {
		d.argProblems(a, ps)
		return
	}
	j.args = args
}

// argProblems reports the problems found in the job's args.
func (d *decoder) argProblems(a at, ps []argProblem) {
	for _, p := range ps {
		d.probs = append(d.probs, &Problem{File: d.file, Line: p.line, Job: a.job, Field: "args", Msg: p.msg})
	}
}

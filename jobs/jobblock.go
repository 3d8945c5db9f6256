package jobs

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/redcron/redcron/scheduler/schedule"
)

// job decodes one job over a copy of the defaults and checks it whole: its
// kind, the keys its kind does not take, the kind's own checks
// (funcblock.go, commandblock.go, httpblock.go), and its schedule.
func (d *decoder) job(defaults *jobDraft, name string, k, v *yaml.Node) *Job {
	a := at{job: name}
	before := len(d.probs)
	if deref(v).Kind != yaml.MappingNode {
		d.fail(v, a, nil, "want a mapping of job keys, got %s", describe(v))
		return nil
	}
	s := &d.draft
	s.reset(defaults)
	for _, kv := range d.pairs(v, a) {
		d.jobField(s, kv[0], kv[1], a)
	}
	kinds := s.kinds
	if len(kinds) == 0 {
		kinds = defaults.kinds
	}
	j := s.job
	j.Name, j.File, j.Line = name, d.file, k.Line

	switch len(kinds) {
	case 0:
		d.fail(k, a.sub(strings.Join(kindKeys(), "|")), nil, "missing: a job needs exactly one of %s", joinWords(kindKeys(), "or"))
	case 1:
		j.Kind = kinds[0].Value
	default:
		var where []string
		for _, kn := range kinds {
			where = append(where, fmt.Sprintf("%s at line %d", kn.Value, kn.Line))
		}
		d.fail(kinds[1], a.sub(kinds[1].Value), nil, "several kinds (%s): a job has exactly one of %s", strings.Join(where, ", "), joinWords(kindKeys(), "or"))
	}
	if j.Kind != "" {
		for _, key := range restrictedKeyList {
			if n := s.restricted.get(key.name); n != nil && key.only != j.Kind {
				d.fail(n, a.sub(key.name), nil, "only for %s jobs, this is a %s job", key.only, j.Kind)
			}
		}
	}
	switch j.Kind {
	case KindFunc:
		d.finishFunc(s, &j, a)
	case KindCommand:
		d.finishCommand(s, &j, k, a, before)
	case KindHTTP:
		d.finishHTTP(s, &j, a, before)
	}
	d.schedule(s, &j, k, a)
	if len(d.probs) > before {
		return nil
	}
	return &j
}

// schedule parses the job's schedule in its zone, and checks that its
// jitter is shorter than the schedule's shortest interval.
func (d *decoder) schedule(s *jobDraft, j *Job, k *yaml.Node, a at) {
	specNode := s.nodes.get("schedule")
	switch {
	case specNode == nil:
		d.fail(k, a.sub("schedule"), nil, "missing: a cron spec such as \"*/5 * * * *\" or \"@every 30s\"")
	case j.Spec != "" || (!d.bad[deref(specNode)] && deref(specNode).Kind == yaml.ScalarNode && !isNull(specNode)):
		key := scheduleKey{j.Spec, j.Location}
		sched, ok := d.schedules[key]
		if !ok {
			var err error
			if sched, err = schedule.Parse(j.Spec, j.Location); err != nil {
				d.fail(specNode, a.sub("schedule"), ErrBadSchedule, "%s", strings.TrimPrefix(err.Error(), "schedule: "))
				return
			}
			if d.schedules == nil {
				d.schedules = map[scheduleKey]schedule.Schedule{}
			}
			d.schedules[key] = sched
		}
		j.Schedule = sched
		// A slot claimed after the next one would be refused: the job's
		// high-water slot never goes back. (Interval scans up to a year of
		// slots: only when there is a jitter to bound.)
		if j.Jitter > 0 {
			if iv := sched.Interval(); iv > 0 && j.Jitter >= iv {
				jn := s.nodes.get("jitter")
				if jn == nil {
					jn = k
				}
				d.fail(jn, a.sub("jitter"), nil, "jitter %s is not shorter than the schedule's shortest interval %s: a slot's claim could come after the next slot's", j.Jitter, iv)
			}
		}
	}
}

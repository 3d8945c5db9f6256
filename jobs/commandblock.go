package jobs

import (
	"os/exec"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// The keys of command jobs, `command:` and the command-only `env:`, `dir:`,
// `kill_grace:` and `output_limit:`, and the check of a command job whole.
// The runner is in command.go.

func decodeCommand(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
	if dv := deref(v); dv.Kind == yaml.ScalarNode && !isNull(dv) {
		d.fail(v, a, nil, "want an argv list (no shell), got %s; for a shell write [\"sh\", \"-c\", \"...\"]", describe(v))
		return
	}
	if argv, ok := d.strList(v, a); ok {
		s.cmd.Argv = argv
	}
}

// decodeEnv merges the env: mapping over the defaults' entry by entry.
func decodeEnv(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
	m, ok := d.strMap(v, a, s.cmd.Env)
	if !ok {
		return
	}
	for name := range m {
		switch {
		case !validEnvName(name):
			d.fail(v, a, nil, "bad variable name %q", name)
		case strings.HasPrefix(name, "REDCRON_"):
			d.fail(v, a, nil, "%s: REDCRON_* variables are set by redcron", name)
		}
	}
	s.cmd.Env = m
}

// decodeDir reads dir:, relative to the config file's directory.
func decodeDir(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
	if dir, ok := d.str(v, a); ok {
		if dir != "" && !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(d.file), dir)
		}
		s.cmd.Dir = dir
	}
}

func decodeKillGrace(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
	if t, ok := d.duration(v, a); ok {
		if t <= 0 {
			d.fail(v, a, nil, "must be positive, got %s", t)
		} else {
			s.cmd.KillGrace = t
		}
	}
}

func decodeOutputLimit(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
	if n, ok := d.integer(v, a); ok {
		if n <= 0 {
			d.fail(v, a, nil, "must be a positive number of bytes, got %d", n)
		} else {
			s.cmd.OutputLimit = n
		}
	}
}

// finishCommand checks a command job whole and sets j.Command. before is
// the number of problems found before the job.
func (d *decoder) finishCommand(s *jobDraft, j *Job, k *yaml.Node, a at, before int) {
	cmd := s.cmd
	cn := s.nodes.get(KindCommand)
	switch {
	case len(cmd.Argv) == 0 && !d.bad[deref(cn)]:
		if len(d.probs) == before || deref(cn).Kind == yaml.SequenceNode {
			d.fail(cn, a.sub("command"), nil, "empty command: want an argv list such as [\"/usr/local/bin/backup\", \"--fast\"]")
		}
	case len(cmd.Argv) > 0 && cmd.Argv[0] == "":
		d.fail(cn, a.sub("command"), nil, "empty program name (argv[0])")
	case len(cmd.Argv) > 0 && !strings.ContainsRune(cmd.Argv[0], '/'):
		if !d.lookPath(cmd.Argv[0]) {
			d.warn(cn, a.sub("command"), "%q is not in this machine's PATH", cmd.Argv[0])
		}
	}
	j.Command = &cmd
	if j.LockTTL > 0 && cmd.KillGrace > j.LockTTL/3 {
		kn := s.nodes.get("kill_grace")
		if kn == nil {
			kn = k
		}
		d.warn(kn, a.sub("kill_grace"), "kill_grace %s is longer than lock_ttl/3 (%s): a command that ignores SIGTERM may still run when its lease expires and another replica starts the job", cmd.KillGrace, j.LockTTL/3)
	}
}

// lookPath says whether program is in PATH, once per program and file.
func (d *decoder) lookPath(program string) bool {
	ok, seen := d.inPath[program]
	if !seen {
		_, err := exec.LookPath(program)
		ok = err == nil
		if d.inPath == nil {
			d.inPath = map[string]bool{}
		}
		d.inPath[program] = ok
	}
	return ok
}

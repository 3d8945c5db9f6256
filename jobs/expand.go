package jobs

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// expand replaces ${VAR} and ${VAR:-default} in s with values from lookup.
//
//   - ${VAR} is VAR's value; an unset VAR is an error (ErrUnsetVar), because
//     a silently empty secret or URL is worse than a refused file. Write
//     ${VAR:-} to accept an empty value.
//   - ${VAR:-default} is VAR's value, or default when VAR is unset or empty.
//     The default is taken literally (no nested expansion) and cannot hold "}".
//   - $${ is a literal "${", for shell snippets that need one.
//   - Everything else, a bare $VAR, $1, $$, $(cmd), is left as written, so
//     shell snippets in command jobs keep their variables.
//   - Other ${...} forms (${VAR-x}, ${VAR:?}, ${#VAR}...) are errors rather
//     than being passed through half-understood.
//
// Values are not rescanned: a value containing "${X}" stays as it is.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	return expandVars(s, lookup, nil)
}

// expandVars is expand that also tells seen (when not nil) about each
// ${...} it resolved: the variable's name, the text put in its place, and
// whether that text came from the environment (false for a default
// written in the file).
func expandVars(s string, lookup func(string) (string, bool), seen func(name, value string, fromEnv bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			i++
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ (write $${ for a literal one)")
			}
			inner := s[i+2 : i+2+end]
			name, v, fromEnv, err := expandOne(inner, lookup)
			if err != nil {
				return "", err
			}
			if seen != nil {
				seen(name, v, fromEnv)
			}
			b.WriteString(v)
			i += 2 + end + 1
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// expandOne resolves the inside of one ${...}: the variable's name, its
// value, and whether the value came from the environment.
func expandOne(inner string, lookup func(string) (string, bool)) (name, value string, fromEnv bool, err error) {
	name, def, hasDef := strings.Cut(inner, ":-")
	if !validEnvName(name) {
		return "", "", false, fmt.Errorf("unsupported expansion ${%s}: only ${VAR} and ${VAR:-default} are expanded (write $${ for a literal ${)", inner)
	}
	v, ok := lookup(name)
	if hasDef {
		if !ok || v == "" {
			return name, def, false, nil
		}
		return name, v, true, nil
	}
	if !ok {
		return "", "", false, fmt.Errorf("%w: ${%s} (write ${%s:-} to allow an empty value)", ErrUnsetVar, name, name)
	}
	return name, v, true, nil
}

// validEnvName reports whether s is a portable environment variable name.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// expandTree expands ${VAR} in every scalar value (not in keys), in place,
// before anything is decoded, so lines stay right. path locates the node;
// nothing keeps it (pathAt copies), so a mapping's children share its
// backing array instead of a copy each.
func (d *decoder) expandTree(n *yaml.Node, path []string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			d.expandTree(n.Content[i+1], append(path, n.Content[i].Value))
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
		if !strings.Contains(n.Value, "${") {
			return // as expandVars would, without its callback: most scalars of a large file
		}
		v, err := expandVars(n.Value, d.lookup, func(name, value string, fromEnv bool) {
			if !slices.Contains(d.vars, name) {
				d.vars = append(d.vars, name)
			}
			if fromEnv && value != "" {
				d.expansions = append(d.expansions, expansion{node: n, path: pathAt(path), name: name, value: value})
			}
		})
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

// collectSecrets adds to d.secrets every value the environment gave a
// ${VAR}, shown as "${VAR}", unless its scalar was only read as a number,
// a boolean or a duration (those cannot carry a credential, and redacting
// "true" or "8080" everywhere would mangle every log line). A secret too
// short to be redacted is warned about.
func (d *decoder) collectSecrets() {
	warned := map[*yaml.Node]bool{}
	for _, e := range d.expansions {
		if d.typed[e.node] && !d.textual[e.node] {
			continue
		}
		if len(e.value) < MinSecretLen {
			if !warned[e.node] {
				warned[e.node] = true
				d.warn(e.node, e.path, "${%s} expands to a value shorter than %d characters: too short to be redacted from logs, records and the API", e.name, MinSecretLen)
			}
			continue
		}
		d.secrets.Add(e.value, "${"+e.name+"}")
	}
}

// redactProblems shows every expanded value (numbers and durations too:
// a message quotes the value it refuses) and every secret found as its
// label in the messages of ps.
func (d *decoder) redactProblems(ps []*Problem) {
	if len(ps) == 0 {
		return
	}
	all := NewSecrets()
	all.Merge(d.secrets)
	for _, e := range d.expansions {
		all.Add(e.value, "${"+e.name+"}")
	}
	for _, p := range ps {
		p.Msg = all.Redact(p.Msg)
	}
}

package jobs

import (
	"fmt"
	"strings"
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
			v, err := expandOne(inner, lookup)
			if err != nil {
				return "", err
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

// expandOne resolves the inside of one ${...}.
func expandOne(inner string, lookup func(string) (string, bool)) (string, error) {
	name, def, hasDef := strings.Cut(inner, ":-")
	if !validEnvName(name) {
		return "", fmt.Errorf("unsupported expansion ${%s}: only ${VAR} and ${VAR:-default} are expanded (write $${ for a literal ${)", inner)
	}
	v, ok := lookup(name)
	if hasDef {
		if !ok || v == "" {
			return def, nil
		}
		return v, nil
	}
	if !ok {
		return "", fmt.Errorf("%w: ${%s} (write ${%s:-} to allow an empty value)", ErrUnsetVar, name, name)
	}
	return v, nil
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

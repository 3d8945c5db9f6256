// Package luaargs lays out the named arguments of a Lua script by position.
// A script reads its arguments as fields of a table A (A.token, A.ttl); the
// caller sends their values alone, in the order of Names, with an empty
// string for an argument not given, and Decoder's Lua fills A from ARGV
// before the script runs. Sending no names saves Redis reading and
// interning them and the script parsing name/value pairs on every call.
package luaargs

import (
	"regexp"
	"strconv"
	"strings"
)

// field matches a read of an argument: "A." and a Lua name, not inside a
// longer name (K.A.x is not a script's).
var field = regexp.MustCompile(`(?:^|[^\w.])A\.([A-Za-z_]\w*)`)

// Names returns the arguments that src reads as A.name, in the order of
// their first use, each once. Lua comments ("--" to the end of the line)
// are skipped, so a header that documents an argument does not make one.
func Names(src string) []string {
	var names []string
	seen := map[string]bool{}
	for line := range strings.SplitSeq(src, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		for _, m := range field.FindAllStringSubmatch(line, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				names = append(names, m[1])
			}
		}
	}
	return names
}

// Decoder returns Lua that sets A to a table of the values ARGV[first+i]
// under the i-th of names, then drops the empty ones (not given), so that
// such a field is nil. The table is built by one constructor, sized once,
// rather than grown field by field. A must be a variable in scope.
func Decoder(names []string, first int) string {
	var b strings.Builder
	b.WriteString("A = {")
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n + " = ARGV[" + strconv.Itoa(first+i) + "]")
	}
	b.WriteString("}\nfor name, v in pairs(A) do\n  if v == \"\" then\n    A[name] = nil\n  end\nend\n")
	return b.String()
}

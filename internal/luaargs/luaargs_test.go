package luaargs

import (
	"slices"
	"testing"
)

// TestNames: arguments in order of first use, each once; comments, other
// tables' fields and longer names do not count.
func TestNames(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"order of first use", "if A.slot then return A.token .. A.slot end", []string{"slot", "token"}},
		{"comment skipped", "-- A.record is documented\nlocal x = A.ttl -- and A.due here", []string{"ttl"}},
		{"other tables", "local y = K.A .. KA.x .. A.ok", []string{"ok"}},
		{"call and index", "f(A.a)[A.b]{A.c}", []string{"a", "b", "c"}},
		{"none", "return 1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Names(tc.src); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDecoder: each name reads its own ARGV index from first on.
func TestDecoder(t *testing.T) {
	got := Decoder([]string{"token", "ttl"}, 2)
	want := "A = {token = ARGV[2], ttl = ARGV[3]}\n" +
		"for name, v in pairs(A) do\n  if v == \"\" then\n    A[name] = nil\n  end\nend\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

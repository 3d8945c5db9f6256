package redistest

import (
	"fmt"
	"testing"
)

func TestScriptLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    []any
		want [][]any
	}{
		{"alone", []any{"evalsha", "s", 2, "L", "M", "lease,meta", "token", "T"},
			[][]any{{"evalsha", "s", 2, "L", "M", "lease,meta", "token", "T"}}},
		{"carried", []any{"evalsha", "b", 3, "L", "M", "K", 2, "obtain", 2, 3, "lease,meta", "token", "T", "finish", 1, 1, "mark"},
			[][]any{{"evalsha", "b", 2, "L", "M", "lease,meta", "token", "T"}, {"evalsha", "b", 1, "K", "mark"}}},
		{"not a script", []any{"get", "k"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ScriptLines(tc.a); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

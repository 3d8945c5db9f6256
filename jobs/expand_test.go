package jobs

import (
	"errors"
	"testing"
)

func TestExpand(t *testing.T) {
	env := mapEnv(map[string]string{"A": "alpha", "EMPTY": "", "URL": "redis://x:6379"})
	tests := []struct {
		name, in, want string
		wantErr        bool
		unset          bool
	}{
		{name: "set var", in: "${A}", want: "alpha"},
		{name: "set var in text", in: "x-${A}-y", want: "x-alpha-y"},
		{name: "default unused", in: "${A:-d}", want: "alpha"},
		{name: "default for unset", in: "${NOPE:-d}", want: "d"},
		{name: "default for empty", in: "${EMPTY:-d}", want: "d"},
		{name: "empty default", in: "${NOPE:-}", want: ""},
		{name: "default with colon", in: "${NOPE:-redis://h:1}", want: "redis://h:1"},
		{name: "set but empty", in: "${EMPTY}", want: ""},
		{name: "unset is an error", in: "${NOPE}", wantErr: true, unset: true},
		{name: "bare $A left alone", in: "echo $A", want: "echo $A"},
		{name: "$$ left alone", in: "echo $$", want: "echo $$"},
		{name: "$$ before a brace is a literal ${", in: "echo $${A}", want: "echo ${A}"},
		{name: "$( left alone", in: "echo $(date)", want: "echo $(date)"},
		{name: "trailing $", in: "cost $", want: "cost $"},
		{name: "two vars", in: "${A}${URL}", want: "alpharedis://x:6379"},
		{name: "value not rescanned", in: "${X}", want: "${A}"},
		{name: "unterminated", in: "${A", wantErr: true},
		{name: "unsupported form", in: "${A:?oops}", wantErr: true},
		{name: "bad name", in: "${1A}", wantErr: true},
		{name: "empty name", in: "${}", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := env
			if tt.name == "value not rescanned" {
				lookup = mapEnv(map[string]string{"X": "${A}", "A": "alpha"})
			}
			got, err := expand(tt.in, lookup)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("expand(%q) = %q, want an error", tt.in, got)
				}
				if got, want := errors.Is(err, ErrUnsetVar), tt.unset; got != want {
					t.Errorf("errors.Is(%v, ErrUnsetVar) = %v, want %v", err, got, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("expand(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

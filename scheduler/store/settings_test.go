package store

import (
	"context"
	"strings"
	"testing"

	"github.com/redcron/redcron/internal/redistest"
)

func TestCheckSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opts    redistest.Options
		want    []string // substrings of warnings, in order
		unknown bool
	}{
		{"as the guarantees need", redistest.Options{AOF: true, Args: []string{"--maxmemory-policy", "noeviction"}}, nil, false},
		{"volatile eviction, no AOF", redistest.Options{Args: []string{"--maxmemory-policy", "volatile-lru"}}, []string{"maxmemory-policy is volatile-lru", "appendonly is no"}, false},
		{"allkeys eviction", redistest.Options{AOF: true, Args: []string{"--maxmemory-policy", "allkeys-lru"}}, []string{"any key, the jobs' fences"}, false},
		{"fsync every second", redistest.Options{AOF: true, Args: []string{"--maxmemory-policy", "noeviction", "--appendfsync", "everysec"}}, []string{"appendfsync is everysec"}, false},
		{"CONFIG refused (managed Redis)", redistest.Options{Args: []string{"--rename-command", "CONFIG", ""}}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := redistest.Start(t, tc.opts).Client(t)
			rep := CheckSettings(context.Background(), c)
			if (rep.Unknown != nil) != tc.unknown {
				t.Fatalf("unknown: got %v, want %v", rep.Unknown, tc.unknown)
			}
			if len(rep.Warnings) != len(tc.want) {
				t.Fatalf("warnings: got %q, want %d matching %q", rep.Warnings, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(rep.Warnings[i], w) {
					t.Errorf("warning %d: got %q, want it to contain %q", i, rep.Warnings[i], w)
				}
			}
		})
	}
}

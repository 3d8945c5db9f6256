package jobs

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to the decoder (parse, without Parse's
// recover, so that a panic is found rather than hidden), and holds
// parseStream to parseTree. Seeds live in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte("jobs:\n  a: {schedule: '@every 5s', func: test.echo, args: {message: hi}}\n"))
	env := mapEnv(map[string]string{"A": "1", "URL": "redis://127.0.0.1:6379"})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStream(t, data, env) // decoded as read, the file decodes as from its tree
		cfg, err := parse("fuzz.yaml", data, env)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v (%T) is not a *ConfigError with problems", err, err)
			}
			for _, p := range ce.Problems {
				if !strings.HasPrefix(p.Error(), "fuzz.yaml") {
					t.Fatalf("problem %q does not name the file", p.Error())
				}
			}
			return
		}
		if len(cfg.Jobs) == 0 {
			t.Fatal("a config without jobs was accepted")
		}
		for _, j := range cfg.Jobs {
			if j.Schedule.Next(time.Unix(0, 0)).IsZero() || j.Location == nil || j.Kind == "" || j.LockTTL < MinLockTTL || j.Retry.Attempts < 1 {
				t.Fatalf("accepted an incomplete job: %+v", j)
			}
		}
	})
}

package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"gopkg.in/yaml.v3"
)

// Fingerprint is a short hash of everything in the job's definition that
// decides when and how it runs (schedule, zone, kind and what it runs,
// lease, overlap, timeout, retries, catch-up, jitter, enabled, history,
// output tail): two replicas whose fingerprints of a job differ run it
// differently, which is configuration drift. It reveals nothing of the
// definition (secrets included): 16 hex digits of a SHA-256.
//
// The notify: block is left out on purpose: where a job's notifications
// go does not change how or when it runs, so replicas that differ only
// there are not drifting.
func (j *Job) Fingerprint() string {
	type cmd struct {
		Argv        []string          `json:"argv"`
		Env         map[string]string `json:"env,omitempty"`
		Dir         string            `json:"dir,omitempty"`
		KillGrace   time.Duration     `json:"kill_grace"`
		OutputLimit int               `json:"output_limit"`
	}
	def := struct {
		Spec, Zone, Kind, Func, Args string
		Command                      *cmd
		HTTP                         *HTTPSpec
		LockTTL, Timeout             time.Duration
		CatchupWindow, Jitter        time.Duration
		Overlap                      Overlap
		Retry                        Retry
		History                      History
		Enabled                      bool
		OutputTail                   int
	}{
		Spec: j.Spec, Kind: j.Kind, Func: j.Func, HTTP: j.HTTP,
		LockTTL: j.LockTTL, Timeout: j.Timeout, CatchupWindow: j.CatchupWindow, Jitter: j.Jitter,
		Overlap: j.Overlap, Retry: j.Retry, History: j.History, Enabled: j.Enabled, OutputTail: j.OutputTail,
	}
	if j.Location != nil {
		def.Zone = j.Location.String()
	}
	if j.Args != nil {
		if b, err := yaml.Marshal(j.Args); err == nil {
			def.Args = string(b)
		}
	}
	if c := j.Command; c != nil {
		def.Command = &cmd{Argv: c.Argv, Env: c.Env, Dir: c.Dir, KillGrace: c.KillGrace, OutputLimit: c.OutputLimit}
	}
	b, _ := json.Marshal(def) // maps marshal with sorted keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/redcron/redcron/internal/jsonstr"
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
//
// The hashed text is the JSON that encoding/json gives the definition's
// struct (maps with sorted keys; fingerprint_test.go keeps that struct and
// checks the two agree), written here directly: replicas of earlier
// versions hash the same text, and 100,000 jobs no longer pay for
// reflection.
func (j *Job) Fingerprint() string {
	var buf [512]byte
	b := buf[:0]
	b = append(b, `{"Spec":`...)
	b = jsonstr.Append(b, j.Spec)
	b = append(b, `,"Zone":`...)
	zone := ""
	if j.Location != nil {
		zone = j.Location.String()
	}
	b = jsonstr.Append(b, zone)
	b = append(b, `,"Kind":`...)
	b = jsonstr.Append(b, j.Kind)
	b = append(b, `,"Func":`...)
	b = jsonstr.Append(b, j.Func)
	b = append(b, `,"Args":`...)
	args := ""
	if j.Args != nil {
		if y, err := yaml.Marshal(j.Args); err == nil {
			args = string(y)
		}
	}
	b = jsonstr.Append(b, args)
	b = append(b, `,"Command":`...)
	if c := j.Command; c == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"argv":`...)
		b = appendJSONStrings(b, c.Argv)
		if len(c.Env) > 0 {
			b = append(b, `,"env":`...)
			b = appendJSONMap(b, c.Env)
		}
		if c.Dir != "" {
			b = append(b, `,"dir":`...)
			b = jsonstr.Append(b, c.Dir)
		}
		b = append(b, `,"kill_grace":`...)
		b = strconv.AppendInt(b, int64(c.KillGrace), 10)
		b = append(b, `,"output_limit":`...)
		b = strconv.AppendInt(b, int64(c.OutputLimit), 10)
		b = append(b, '}')
	}
	b = append(b, `,"HTTP":`...)
	if h := j.HTTP; h == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"Method":`...)
		b = jsonstr.Append(b, h.Method)
		b = append(b, `,"URL":`...)
		b = jsonstr.Append(b, h.URL)
		b = append(b, `,"Headers":`...)
		b = appendJSONMap(b, h.Headers)
		b = append(b, `,"Body":`...)
		b = jsonstr.Append(b, h.Body)
		b = append(b, `,"Expect":`...)
		if h.Expect == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '[')
			for i, x := range h.Expect {
				if i > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, int64(x), 10)
			}
			b = append(b, ']')
		}
		b = appendJSONDuration(b, `,"Timeout":`, h.Timeout)
		b = append(b, '}')
	}
	b = appendJSONDuration(b, `,"LockTTL":`, j.LockTTL)
	b = appendJSONDuration(b, `,"Timeout":`, j.Timeout)
	b = appendJSONDuration(b, `,"CatchupWindow":`, j.CatchupWindow)
	b = appendJSONDuration(b, `,"Jitter":`, j.Jitter)
	b = append(b, `,"Overlap":`...)
	b = jsonstr.Append(b, string(j.Overlap))
	b = append(b, `,"Retry":{"Attempts":`...)
	b = strconv.AppendInt(b, int64(j.Retry.Attempts), 10)
	b = appendJSONDuration(b, `,"Backoff":`, j.Retry.Backoff)
	b = appendJSONDuration(b, `,"MaxBackoff":`, j.Retry.MaxBackoff)
	b = append(b, `},"History":{"Keep":`...)
	b = strconv.AppendInt(b, int64(j.History.Keep), 10)
	b = appendJSONDuration(b, `,"MaxAge":`, j.History.MaxAge)
	b = append(b, `},"Enabled":`...)
	b = strconv.AppendBool(b, j.Enabled)
	b = append(b, `,"OutputTail":`...)
	b = strconv.AppendInt(b, int64(j.OutputTail), 10)
	b = append(b, '}')
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// appendJSONDuration appends the JSON key and d in nanoseconds, as
// encoding/json writes a time.Duration.
func appendJSONDuration(b []byte, key string, d time.Duration) []byte {
	return strconv.AppendInt(append(b, key...), int64(d), 10)
}

// appendJSONStrings appends ss as encoding/json does (nil is null).
func appendJSONStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, s)
	}
	return append(b, ']')
}

// appendJSONMap appends m as encoding/json does: keys sorted, nil is null.
func appendJSONMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, k)
		b = append(b, ':')
		b = jsonstr.Append(b, m[k])
	}
	return append(b, '}')
}

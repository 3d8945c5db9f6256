package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"

	"github.com/redcron/redcron/jobs"
)

// Promise 10, "Secrets stay in": whatever this binary prints or logs goes
// through one jobs.Secrets per command line. realMain starts it with what
// the environment holds (the HTTP token, the password of
// REDCRON_REDIS_URL), loadConfig adds the config's (every ${VAR} value,
// every Redis password) and makes it the config's, the --redis flag adds
// its password. stdout and stderr are wrapped in a secretWriter, which
// redacts text; the logger and printJSON unwrap it to redact JSON
// documents inside their strings only.

// tokenEnv names the bearer token of the HTTP actions (and reads).
const tokenEnv = "REDCRON_HTTP_TOKEN"

// envSecrets is the secrets of the environment: the HTTP token, shown as
// ${REDCRON_HTTP_TOKEN}, and the password of REDCRON_REDIS_URL.
func envSecrets() *jobs.Secrets {
	s := jobs.NewSecrets()
	s.Add(os.Getenv(tokenEnv), "${"+tokenEnv+"}")
	s.AddURLPassword(os.Getenv("REDCRON_REDIS_URL"), jobs.RedactedLabel)
	return s
}

// secretWriter redacts every write as text before passing it to w.
type secretWriter struct {
	sec *jobs.Secrets
	w   io.Writer
}

func (s *secretWriter) Write(p []byte) (int, error) { return s.sec.Writer(s.w).Write(p) }

// withSecrets wraps w so that what is written to it is redacted with sec.
func withSecrets(w io.Writer, sec *jobs.Secrets) io.Writer {
	return &secretWriter{sec: sec, w: w}
}

// secretsOf is the Secrets of a writer wrapped by withSecrets; nil (which
// redacts nothing) for another writer.
func secretsOf(w io.Writer) *jobs.Secrets {
	if sw, ok := w.(*secretWriter); ok {
		return sw.sec
	}
	return nil
}

// unwrap is the writer under a secretWriter, and its Secrets.
func unwrap(w io.Writer) (io.Writer, *jobs.Secrets) {
	if sw, ok := w.(*secretWriter); ok {
		return sw.w, sw.sec
	}
	return w, nil
}

// printJSON writes v as indented JSON, its strings redacted.
func printJSON(w io.Writer, v any) {
	inner, sec := unwrap(w)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	_, _ = inner.Write(sec.RedactJSON(b.Bytes()))
}

// Package jobs holds redcron's job definitions: the strict decoder and
// validator of jobs.yaml, the registry of Go job functions, and the built-in
// command and HTTP jobs.
//
// A configuration is decoded from yaml.v3 nodes so that every problem can be
// reported with its file and line; Load and Parse report every problem they
// find, not only the first, as a *ConfigError (errors.Is(err,
// ErrInvalidConfig) holds). A Job's Run executes one attempt; retries, claims,
// leases and timing belong to the scheduler.
//
// A loaded Config carries its Secrets: the values its ${VAR}s brought and
// its Redis passwords, which every boundary where text leaves the process
// (logs, records, the status API, notifications, validate) shows as the
// ${VAR} they came from, or ***. Problems quote ${VAR}s, not values.
package jobs

package scheduler

// PauseKey is the Redis key whose presence pauses job on every replica:
// claims for its slots then fail, and each slot is recorded as skipped
// (reason "paused") once. prefix "" means DefaultPrefix.
func PauseKey(prefix, job string) string { return jobKeys(orDefaultPrefix(prefix), job).paused }

// HistoryKey is the Redis list of job's most recent run Records (JSON,
// newest first), bounded by Options.HistoryLen and HistoryTTL. prefix ""
// means DefaultPrefix.
func HistoryKey(prefix, job string) string { return jobKeys(orDefaultPrefix(prefix), job).history }

func orDefaultPrefix(p string) string {
	if p == "" {
		return DefaultPrefix
	}
	return p
}

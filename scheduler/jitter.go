package scheduler

import (
	"encoding/binary"
	"hash/fnv"
	"time"
)

// Jitter returns the delay before claiming (job, slot): a deterministic
// value in [0, max), the same on every replica (FNV-1a of the job name and
// the slot's Unix second), so that replicas still race for the same slot at
// the same moment while different jobs spread out. max <= 0 gives 0.
func Jitter(job string, slot time.Time, max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(job))
	var b [9]byte // a separator byte, then the slot
	binary.BigEndian.PutUint64(b[1:], uint64(slot.Unix()))
	_, _ = h.Write(b[:])
	return time.Duration(h.Sum64() % uint64(max))
}

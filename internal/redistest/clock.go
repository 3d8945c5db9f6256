package redistest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// FaketimeInstallHint is the command that installs faketime (and
// libfaketime) on Debian; Options.ClockOffset needs it.
const FaketimeInstallHint = "apt-get update && apt-get install -y faketime"

// ErrNoFaketime is returned when Options.ClockOffset is set and faketime
// cannot be found on PATH.
var ErrNoFaketime = errors.New("redistest: faketime not found on PATH (needed for Options.ClockOffset); install it with: " + FaketimeInstallHint)

// The libraries preloaded into a server with a clock offset. "$LIB" is
// expanded by the dynamic loader to the process's own library directory
// (lib/x86_64-linux-gnu on Debian amd64), as Debian's faketime wrapper does.
//
// libfaketime shifts gettimeofday and clock_gettime(CLOCK_REALTIME), which is
// what TIME and key expiry read. It cannot be preloaded alone: Debian's
// redis-server allocates with the system libjemalloc, whose initialisation
// calls clock_gettime while holding a lock, and libfaketime's own lazy
// initialisation then calls malloc, which deadlocks at start (a known,
// unfixed clash: github.com/wolfcw/libfaketime/issues/130). glibc's
// libc_malloc_debug, preloaded first, routes malloc and free to glibc's
// allocator, so jemalloc is never initialised by an allocation. Redis still
// links jemalloc for statistics (INFO's allocator_* fields become
// meaningless); its only other jemalloc call, nallocx in sdsResize, merely
// decides whether to skip a realloc and stays memory-safe.
const (
	preloadMallocDebug = "/$LIB/libc_malloc_debug.so.0"
	preloadFaketime    = "/usr/$LIB/faketime/libfaketime.so.1"
)

// faketimeSpec formats an offset for libfaketime's FAKETIME variable: a
// signed number of seconds, fractions with a dot ("+10", "-1.5"). A relative
// offset keeps the clock ticking.
func faketimeSpec(d time.Duration) string {
	s := strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
	if d >= 0 {
		s = "+" + s
	}
	return s
}

// faketimeEnv is the environment of a server whose wall clock runs offset
// ahead of (or, negative, behind) the machine's. The monotonic clock is left
// alone: Redis measures intervals on it, and a negative offset larger than
// the uptime would otherwise take it below zero.
func faketimeEnv(offset time.Duration) []string {
	return append(os.Environ(),
		"LD_PRELOAD="+preloadMallocDebug+" "+preloadFaketime,
		"FAKETIME="+faketimeSpec(offset),
		"FAKETIME_DONT_FAKE_MONOTONIC=1",
	)
}

// lookFaketime reports ErrNoFaketime when the faketime package is missing.
func lookFaketime() error {
	if _, err := exec.LookPath("faketime"); err != nil {
		return ErrNoFaketime
	}
	return nil
}

// checkFaketimeLoaded confirms that libfaketime is mapped into process pid:
// the dynamic loader only warns, and then starts the server with the real
// clock, when a preloaded library is missing.
func checkFaketimeLoaded(pid int) error {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return fmt.Errorf("redistest: check libfaketime in redis-server: %w", err)
	}
	if !strings.Contains(string(maps), "/libfaketime.so") {
		return fmt.Errorf("redistest: libfaketime is not loaded into redis-server (LD_PRELOAD=%s %s); install it with: %s",
			preloadMallocDebug, preloadFaketime, FaketimeInstallHint)
	}
	return nil
}

// removeFaketimeShm removes the POSIX semaphore and shared memory that
// libfaketime creates in the first process it is loaded into (named after its
// pid) and removes only at a clean exit: a server ended with SIGKILL would
// leave them in /dev/shm.
func removeFaketimeShm(pid int) {
	_ = os.Remove(fmt.Sprintf("/dev/shm/sem.faketime_sem_%d", pid))
	_ = os.Remove(fmt.Sprintf("/dev/shm/faketime_shm_%d", pid))
}

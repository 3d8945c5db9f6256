package redistest

import (
	"strconv"
	"strings"
	"testing"
)

// InfoInt is the number that follows prefix at the start of a line of an
// INFO section's text ("total_net_input_bytes:"), up to the line's end or
// a comma; 0 when no line starts with prefix. A value that is not a
// number fails the test.
func InfoInt(t testing.TB, info, prefix string) int {
	t.Helper()
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			v, _, _ := strings.Cut(rest, ",")
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("INFO %s: %v", prefix, err)
			}
			return n
		}
	}
	return 0
}

// CommandCalls is a command's calls in INFO commandstats text; 0 when it
// was not called.
func CommandCalls(t testing.TB, stats, cmd string) int {
	t.Helper()
	return InfoInt(t, stats, "cmdstat_"+cmd+":calls=")
}

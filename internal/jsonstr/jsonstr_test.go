package jsonstr

import (
	"encoding/json"
	"testing"
)

// TestAppendAsEncodingJSON: Append writes what encoding/json's Marshal
// writes for strings it escapes (HTML, control bytes, bad UTF-8, U+2028).
func TestAppendAsEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ back`, "<html> & </html>", "tab\tnl\ncr\rbs\bff\f",
		"\x00\x01\x1f\x7f", "é ü 世界", "bad \xff utf-8 \xc3", "line\u2028para\u2029", "emoji 🙂"} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := Append(nil, s); string(got) != string(want) {
			t.Errorf("Append(%q): got %s, want %s", s, got, want)
		}
	}
}

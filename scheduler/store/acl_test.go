package store

import (
	"os"
	"strings"
	"testing"
)

// TestACLRulesInREADME: the README's ACL SETUSER line is the one ACLRules
// makes for the default prefix, so what operators copy is what the
// least-privilege test (cmd/redcron TestLeastPrivilegeACL) runs with.
func TestACLRulesInREADME(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := "ACL SETUSER redcron on >PASSWORD " + strings.Join(ACLRules(DefaultPrefix), " ")
	if !strings.Contains(string(b), want) {
		t.Errorf("README.md lacks the ACL line of ACLRules(%q):\n%s", DefaultPrefix, want)
	}
}

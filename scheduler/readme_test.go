package scheduler_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestREADMEExampleBuilds copies the README's Go example, as written, into
// a module of its own that requires this checkout through a replace
// directive, and builds it with the module cache only (no network): the
// example a new user copies must compile.
func TestREADMEExampleBuilds(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Go API.*?```go\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md: no ```go block under ## Go API")
	}
	dir := t.TempDir()
	// The example's requirements are this module's own, plus this module:
	// a go.mod that lists every module its build needs is complete, so the
	// go command reads no go.mod beyond them (an old x/sys that a
	// dependency of a dependency names, say), and the module cache that
	// built this checkout suffices, also on a fresh machine.
	ownMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	gomod := regexp.MustCompile(`(?m)^module .*$`).ReplaceAllString(string(ownMod), "module example.com/cronapp") +
		"\nrequire github.com/redcron/redcron v0.0.0\n\nreplace github.com/redcron/redcron => " + root + "\n"
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"main.go": m[1], "go.mod": []byte(gomod), "go.sum": sum} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", filepath.Join(dir, "cronapp"), ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's Go example does not build as written: %v\n%s\n--- main.go:\n%s", err, out, m[1])
	}
}

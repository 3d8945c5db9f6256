package jobs

import (
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretsRedact(t *testing.T) {
	s := NewSecrets()
	s.Add("p@ss w/rd&x=\"q\"", "${PW}")
	s.Add("tok-123456", "${TOKEN}")
	s.Add("abc", "${SHORT}")      // too short: ignored
	s.Add("tok-123456", "${DUP}") // the first label stays
	tests := []struct {
		name, in, want string
	}{
		{"raw", "token tok-123456 here", "token ${TOKEN} here"},
		{"query escaped", "GET /?pw=" + url.QueryEscape("p@ss w/rd&x=\"q\""), "GET /?pw=${PW}"},
		{"path escaped", "/a/" + url.PathEscape("p@ss w/rd&x=\"q\""), "/a/${PW}"},
		{"userinfo escaped", url.UserPassword("u", "p@ss w/rd&x=\"q\"").String() + "@h", "u:${PW}@h"},
		{"go quoted", `parse "p@ss w/rd&x=\"q\""`, `parse "${PW}"`},
		{"json escaped", `{"e":"p@ss w/rd\u0026x=\"q\""}`, `{"e":"${PW}"}`},
		{"short value kept", "abc", "abc"},
		{"nothing", "plain text", "plain text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Redact(tt.in); got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if got, want := s.Len(), 2; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
	var nilSecrets *Secrets
	if got := nilSecrets.Redact("tok-123456"); got != "tok-123456" {
		t.Errorf("nil Secrets: Redact = %q, want it unchanged", got)
	}
}

func TestSecretsRedactJSON(t *testing.T) {
	s := NewSecrets()
	s.Add("8080", "${PORT}")
	s.Add(`se"cr\et`, "${PW}")
	s.Add("nabc", "${N}")
	tests := []struct {
		name, in, want string
	}{
		{"numbers outside strings stay", `{"port":8080,"url":"http://h:8080/x"}`, `{"port":8080,"url":"http://h:${PORT}/x"}`},
		{"escaped secret", `{"e":"x se\"cr\\et y"}`, `{"e":"x ${PW} y"}`},
		{"escape not split", `{"e":"a\nabc"}`, `{"e":"a\nabc"}`},
		{"key too", `{"8080":1}`, `{"${PORT}":1}`},
		{"nothing", `{"a":"b","n":[1,2,true,null]}`, `{"a":"b","n":[1,2,true,null]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(s.RedactJSON([]byte(tt.in)))
			if got != tt.want {
				t.Errorf("RedactJSON(%s) = %s, want %s", tt.in, got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("RedactJSON(%s) = %s: not valid JSON", tt.in, got)
			}
		})
	}
}

func TestSecretsRedactTail(t *testing.T) {
	s := NewSecrets()
	s.Add("supersecretvalue", "${S}")
	tests := []struct {
		name, in, want string
	}{
		{"cut secret at the start", "…secretvalue and more", "…${S} and more"},
		{"whole secret", "…x supersecretvalue", "…x ${S}"},
		{"too little left", "…lue and more", "…lue and more"},
		{"not cut", "secretvalue", "secretvalue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.RedactTail(tt.in); got != tt.want {
				t.Errorf("RedactTail(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSecretsWriters(t *testing.T) {
	s := NewSecrets()
	s.Add("hunter22", "${PW}")
	var b strings.Builder
	w := s.JSONWriter(&b)
	line := `{"level":"info","error":"auth hunter22 refused","n":1}` + "\n"
	if n, err := w.Write([]byte(line)); err != nil || n != len(line) {
		t.Fatalf("Write = %d, %v, want %d, nil", n, err, len(line))
	}
	if _, err := s.Writer(&b).Write([]byte("text hunter22\n")); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), `{"level":"info","error":"auth ${PW} refused","n":1}`+"\ntext ${PW}\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://:pw@h:6379/0", "redis://***@h:6379/0"},
		{"redis://user:p@w@h:6379", "redis://***@h:6379"},
		{"redis://pw-in-user@h:6379", "redis://***@h:6379"},
		{"redis://h:6379/0?x=@y", "redis://h:6379/0?x=@y"},
		{"not a url", "not a url"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := RedactURL(tt.in); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseSecretURL(t *testing.T) {
	tests := []struct{ name, in string }{
		{"bad port", "redis://:hunter22@host:xx/0"},
		{"bad escape in password", "redis://:hun%zzter22@host:6379/0"},
		{"control character", "redis://:hunter22@host:6379/\x7f"},
		{"space in host", "redis://:hunter22@ho st:6379/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSecretURL(tt.in)
			if err == nil {
				t.Fatalf("ParseSecretURL(%q): no error", tt.in)
			}
			if !errors.Is(err, ErrBadURL) {
				t.Errorf("errors.Is(%v, ErrBadURL) = false, want true", err)
			}
			for _, leak := range []string{"hunter22", "hun%zz", "zzter"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q shows %q of the password", err, leak)
				}
			}
		})
	}
}

// TestConfigSecrets: what Load counts as a secret, and how it is shown.
func TestConfigSecrets(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "redis.pw")
	if err := os.WriteFile(pwFile, []byte("file-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"TOKEN": "tok-from-env", "TIMEOUT": "30s", "ENABLED": "true", "TAIL": "1000",
		"ENVDEF": "env-default-value", "SHORT": "ab", "HOST": "api.internal",
	}
	cfg := mustParse(t, `
redis:
  quorum: ["redis://:quorum-pw-1@h1:6379", "redis://:quorum-pw-2@h2:6379", "redis://h3:6379"]
  password_file: `+pwFile+`
jobs:
  ping:
    schedule: "@every 1m"
    http:
      url: "https://${HOST}/hook?token=${TOKEN}"
      headers: {X-Short: "${SHORT}", X-Env: "${ENVDEF:-literal-default}", X-Lit: "${UNSET_VAR:-literal-default}"}
      timeout: ${TIMEOUT}
    enabled: ${ENABLED}
    output_tail: ${TAIL}
`, env)
	tests := []struct {
		name, in, want string
	}{
		{"env value", "token tok-from-env", "token ${TOKEN}"},
		{"host from env", "dial api.internal", "dial ${HOST}"},
		{"env default", "env-default-value", "${ENVDEF}"},
		{"literal default is not secret", "literal-default", "literal-default"},
		{"duration is not secret", "30s", "30s"},
		{"boolean is not secret", "true", "true"},
		{"integer is not secret", "1000", "1000"},
		{"quorum url password", "auth quorum-pw-1 quorum-pw-2", "auth *** ***"},
		{"password file", "file-password", "***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cfg.Secrets.Redact(tt.in); got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if got, want := cfg.Redis.Password, "file-password"; got != want {
		t.Errorf("redis password = %q, want %q (the file's, without its line break)", got, want)
	}
	var short bool
	for _, w := range cfg.Warnings {
		short = short || (w.Field == "http.headers.X-Short" && strings.Contains(w.Msg, "${SHORT}") && !strings.Contains(w.Msg, "ab "))
	}
	if !short {
		t.Errorf("warnings %v: want one about ${SHORT} being too short to redact", cfg.Warnings)
	}
}

func TestRedisPasswordSources(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	job := "jobs: {j: {schedule: \"@every 1m\", command: [\"true\"]}}\n"
	tests := []struct {
		name, redis string
		env         map[string]string
		want, label string
	}{
		{"password", "redis: {url: \"redis://h:6379\", password: written-pw}\n", nil, "written-pw", "***"},
		{"password_file", "redis: {url: \"redis://h:6379\", password_file: " + pwFile + "}\n", nil, "from-file", "***"},
		{"relative password_file", "redis: {url: \"redis://h:6379\", password_file: pw}\n", nil, "from-file", "***"},
		{"env wins", "redis: {url: \"redis://h:6379\", password_file: pw}\n", map[string]string{RedisPasswordEnv: "env-password"}, "env-password", "${REDCRON_REDIS_PASSWORD}"},
		{"env without a redis block", "", map[string]string{RedisPasswordEnv: "env-password"}, "env-password", "${REDCRON_REDIS_PASSWORD}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(filepath.Join(dir, "jobs.yaml"), []byte(tt.redis+job), mapEnv(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Redis.Password; got != tt.want {
				t.Errorf("password = %q, want %q", got, tt.want)
			}
			if got := cfg.Secrets.Redact(tt.want); got != tt.label {
				t.Errorf("Redact(password) = %q, want %q", got, tt.label)
			}
		})
	}
}

func TestRedisPasswordProblems(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "unreadable")
	if err := os.WriteFile(unreadable, []byte("pw"), 0o000); err != nil {
		t.Fatal(err)
	}
	job := "jobs: {j: {schedule: \"@every 1m\", command: [\"true\"]}}\n"
	tests := []struct {
		name, redis, want string
		sentinel          error
	}{
		{"missing file", "redis:\n  password_file: nope\n", "jobs.yaml:2: field redis.password_file: stat " + filepath.Join(dir, "nope") + ": no such file or directory", ErrPasswordFile},
		{"directory", "redis:\n  password_file: " + dir + "\n", "jobs.yaml:2: field redis.password_file: " + dir + ": not a regular file", ErrPasswordFile},
		{"empty file", "redis:\n  password_file: empty\n", "jobs.yaml:2: field redis.password_file: " + empty + " is empty", ErrPasswordFile},
		{"both", "redis:\n  password: x\n  password_file: empty\n", "jobs.yaml:3: field redis.password_file: set only one of password and password_file, got both", nil},
		{"bad url keeps its password", "redis:\n  url: \"redis://:hunter22@host:xx/0\"\n", "jobs.yaml:2: field redis.url: bad URL redis://***@host:xx/0: invalid port \":xx\" after host", nil},
		{"bad scheme keeps its password", "redis:\n  url: \"http://:hunter22@host/0\"\n", "jobs.yaml:2: field redis.url: bad URL \"http://***@host/0\": want redis://, rediss:// or unix://", nil},
	}
	if os.Geteuid() != 0 { // root reads any file
		tests = append(tests, struct {
			name, redis, want string
			sentinel          error
		}{"unreadable", "redis:\n  password_file: unreadable\n", "jobs.yaml:2: field redis.password_file: open " + unreadable + ": permission denied", ErrPasswordFile})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "jobs.yaml"), []byte(tt.redis+job), nil)
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) != 1 {
				t.Fatalf("got %v, want one problem", err)
			}
			if got := strings.TrimPrefix(ce.Problems[0].Error(), dir+"/"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(err, %v) = false, want true", tt.sentinel)
			}
			if strings.Contains(err.Error(), "hunter22") {
				t.Errorf("the problem %q shows the password", err)
			}
		})
	}
}

// TestProblemsRedacted: a problem quoting a value that came from ${VAR}
// shows the ${VAR}, not the value.
func TestProblemsRedacted(t *testing.T) {
	_, err := Parse("jobs.yaml", []byte(`
jobs:
  j:
    schedule: "@every 1m"
    http: {url: "ftp://${HOST}/x?token=${TOKEN}", method: "${METHOD}"}
`), mapEnv(map[string]string{"HOST": "h.example", "TOKEN": "tok-secret-1", "METHOD": "STEAL-tok"}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, leak := range []string{"tok-secret-1", "h.example", "STEAL-tok"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("problems %q show %q", err, leak)
		}
	}
	if !strings.Contains(err.Error(), "${TOKEN}") || !strings.Contains(err.Error(), "${METHOD}") {
		t.Errorf("problems %q: want the ${VAR}s in place of the values", err)
	}
}

package jobs

import "testing"

func TestFingerprint(t *testing.T) {
	base := "jobs:\n  a: {schedule: '@every 10s', command: [/bin/true], env: {A: '1', B: '2'}}\n"
	for _, tc := range []struct {
		name string
		src  string
		same bool
	}{
		{"same definition", base, true},
		{"same, env keys in another order", "jobs:\n  a: {schedule: '@every 10s', command: [/bin/true], env: {B: '2', A: '1'}}\n", true},
		{"another schedule", "jobs:\n  a: {schedule: '@every 20s', command: [/bin/true], env: {A: '1', B: '2'}}\n", false},
		{"another overlap", "jobs:\n  a: {schedule: '@every 10s', overlap: allow, command: [/bin/true], env: {A: '1', B: '2'}}\n", false},
		{"another env value", "jobs:\n  a: {schedule: '@every 10s', command: [/bin/true], env: {A: '1', B: '3'}}\n", false},
		{"another zone", "jobs:\n  a: {schedule: '@every 10s', timezone: Europe/Paris, command: [/bin/true], env: {A: '1', B: '2'}}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mustParse(t, base, nil).Jobs[0].Fingerprint()
			b := mustParse(t, tc.src, nil).Jobs[0].Fingerprint()
			if (a == b) != tc.same || len(a) != 16 {
				t.Errorf("fingerprints %s and %s: equal %v, want %v (16 hex digits)", a, b, a == b, tc.same)
			}
		})
	}
}

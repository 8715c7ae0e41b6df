package schemas_test

import (
	"errors"
	"testing"

	"github.com/miniku/miniku/schemas"
)

func TestPodSecurity(t *testing.T) {
	hostNet := schemas.PodSpec{Image: "busybox", HostNetwork: true}
	plain := schemas.PodSpec{Image: "busybox"}
	tests := []struct {
		name  string
		spec  schemas.PodSpec
		level schemas.PodSecurityLevel
		pod   string // the pod's error, "" for none
		rs    string // the replicaset template's
	}{
		{"hostNetwork under the default", hostNet, "",
			`violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)`,
			`violates PodSecurity "baseline:latest": host namespaces (template.hostNetwork=true)`},
		{"hostNetwork under baseline", hostNet, schemas.PodSecurityBaseline,
			`violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)`,
			`violates PodSecurity "baseline:latest": host namespaces (template.hostNetwork=true)`},
		{"hostNetwork, privileged opt-in", hostNet, schemas.PodSecurityPrivileged, "", ""},
		{"own network namespace", plain, schemas.PodSecurityBaseline, "", ""},
		// A level nobody parsed is no opt-in.
		{"unknown level is baseline", hostNet, "typo",
			`violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)`,
			`violates PodSecurity "baseline:latest": host namespaces (template.hostNetwork=true)`},
	}
	check := func(t *testing.T, what string, err error, want string) {
		t.Helper()
		if want == "" {
			if err != nil {
				t.Fatalf("%s: %v, want none", what, err)
			}
			return
		}
		var pse *schemas.PodSecurityError
		if !errors.As(err, &pse) || err.Error() != want {
			t.Fatalf("%s: %v, want a PodSecurityError %q", what, err, want)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "p"}, PodSpec: tc.spec}
			check(t, "pod", p.CheckPodSecurity(tc.level), tc.pod)
			rs := schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "rs"}}
			rs.Template.PodSpec = tc.spec
			check(t, "replicaset", rs.CheckPodSecurity(tc.level), tc.rs)
		})
	}
}

func TestParsePodSecurityLevel(t *testing.T) {
	for in, want := range map[string]schemas.PodSecurityLevel{
		"": schemas.PodSecurityBaseline, "baseline": schemas.PodSecurityBaseline, "privileged": schemas.PodSecurityPrivileged,
	} {
		if got, err := schemas.ParsePodSecurityLevel(in); err != nil || got != want {
			t.Fatalf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"restricted", "Privileged", "none"} {
		if _, err := schemas.ParsePodSecurityLevel(in); err == nil {
			t.Fatalf("%q accepted", in)
		}
	}
}

package schemas

import (
	"fmt"
	"strings"
)

// PodSecurityLevel is a Kubernetes Pod Security Standards level, as the
// Pod Security admission enforces it. MiniKu knows the two its pod type can
// tell apart: "restricted" checks fields (runAsNonRoot, capabilities,
// seccomp) MiniKu's pods do not have.
type PodSecurityLevel string

const (
	// PodSecurityBaseline forbids known privilege escalations; of MiniKu's
	// fields, the host namespaces: hostNetwork. The default.
	PodSecurityBaseline PodSecurityLevel = "baseline"
	// PodSecurityPrivileged allows everything: the explicit opt-in.
	PodSecurityPrivileged PodSecurityLevel = "privileged"
)

// ParsePodSecurityLevel checks a level name; "" is the baseline default.
func ParsePodSecurityLevel(s string) (PodSecurityLevel, error) {
	switch PodSecurityLevel(s) {
	case "", PodSecurityBaseline:
		return PodSecurityBaseline, nil
	case PodSecurityPrivileged:
		return PodSecurityPrivileged, nil
	case "restricted":
		return "", fmt.Errorf(`pod security level "restricted" is not supported: MiniKu's pods have no securityContext fields for it to check; use "baseline" or "privileged"`)
	}
	return "", fmt.Errorf(`pod security level %q: want "baseline" (the default) or "privileged"`, s)
}

// PodSecurityError is an object that violates the enforced level. Its
// message is Kubernetes' Pod Security admission's, with the field names.
type PodSecurityError struct {
	Level PodSecurityLevel
	// Violations are "check (field=value, ...)", e.g.
	// "host namespaces (hostNetwork=true)".
	Violations []string
}

func (e *PodSecurityError) Error() string {
	return fmt.Sprintf("violates PodSecurity %q: %s", string(e.Level)+":latest", strings.Join(e.Violations, ", "))
}

// CheckPodSecurity returns a *PodSecurityError if the pod's spec breaks
// level ("" is baseline), else nil.
func (p *Pod) CheckPodSecurity(level PodSecurityLevel) error {
	return p.PodSpec.checkPodSecurity(level, "")
}

// CheckPodSecurity checks the replicaset's template, whose pods would
// otherwise be refused one by one after the replicaset was accepted.
func (rs *ReplicaSet) CheckPodSecurity(level PodSecurityLevel) error {
	return rs.Template.PodSpec.checkPodSecurity(level, "template.")
}

func (s *PodSpec) checkPodSecurity(level PodSecurityLevel, prefix string) error {
	if level == PodSecurityPrivileged {
		return nil
	}
	// Every host-namespace field of the pod type belongs here (Kubernetes:
	// hostNetwork, hostPID, hostIPC; host ports are a check of their own).
	var hostNS []string
	if s.HostNetwork {
		hostNS = append(hostNS, prefix+"hostNetwork=true")
	}
	if len(hostNS) == 0 {
		return nil
	}
	return &PodSecurityError{Level: PodSecurityBaseline, Violations: []string{
		"host namespaces (" + strings.Join(hostNS, ", ") + ")",
	}}
}

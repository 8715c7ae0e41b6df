package schemas

import (
	"errors"
	"time"
)

// PodStatus is the part of a pod its kubelet may write (Kubernetes'
// NodeRestriction: a kubelet changes only the status of pods bound to its
// node). A field added to Pod's status must be added here too, or
// kubelets cannot set it.
type PodStatus struct {
	Status       PodPhase   `json:"status"`
	ContainerID  string     `json:"containerId,omitempty"`
	ExitCode     *int       `json:"exitCode,omitempty"`
	Reason       string     `json:"reason,omitempty"`
	Message      string     `json:"message,omitempty"`
	RestartCount int        `json:"restartCount,omitempty"`
	StartedAt    *time.Time `json:"startedAt,omitempty"`
	FinishedAt   *time.Time `json:"finishedAt,omitempty"`
}

// PodStatusOf is p's status part.
func PodStatusOf(p *Pod) PodStatus {
	return PodStatus{Status: p.Status, ContainerID: p.ContainerID, ExitCode: p.ExitCode, Reason: p.Reason,
		Message: p.Message, RestartCount: p.RestartCount, StartedAt: p.StartedAt, FinishedAt: p.FinishedAt}
}

// SetPodStatus replaces p's status part with s and leaves the rest alone.
func SetPodStatus(p *Pod, s PodStatus) {
	p.Status, p.ContainerID, p.ExitCode, p.Reason = s.Status, s.ContainerID, s.ExitCode, s.Reason
	p.Message, p.RestartCount, p.StartedAt, p.FinishedAt = s.Message, s.RestartCount, s.StartedAt, s.FinishedAt
}

// Limits of a status a kubelet writes: a message is for people, not a log.
const maxStatusMessage = 4 << 10

// ValidatePodStatusUpdate checks a status the kubelet of old's node wants
// to write: a known phase, a terminal phase kept for good (a Failed pod's
// replacement may already run elsewhere), a restart count that only grows.
func ValidatePodStatusUpdate(old *Pod, s PodStatus) error {
	switch s.Status {
	case PodPending, PodRunning, PodSucceeded, PodFailed, PodUnknown:
	default:
		return fieldErr("status", "unknown phase %q", s.Status)
	}
	var errs []error
	if old.Status.Terminal() && !s.Equal(PodStatusOf(old)) {
		errs = append(errs, fieldErr("status", "pod is %s already; a terminal status is final", old.Status))
	}
	if s.RestartCount < old.RestartCount {
		errs = append(errs, fieldErr("restartCount", "may not decrease (from %d to %d)", old.RestartCount, s.RestartCount))
	}
	if len(s.Message) > maxStatusMessage || len(s.Reason) > MaxNameLength*4 {
		errs = append(errs, fieldErr("message", "reason or message too long (at most %d bytes)", maxStatusMessage))
	}
	return errors.Join(errs...)
}

// Equal reports whether s and o say the same.
func (s PodStatus) Equal(o PodStatus) bool {
	return s.Status == o.Status && s.ContainerID == o.ContainerID && eqPtr(s.ExitCode, o.ExitCode) &&
		s.Reason == o.Reason && s.Message == o.Message && s.RestartCount == o.RestartCount &&
		eqTime(s.StartedAt, o.StartedAt) && eqTime(s.FinishedAt, o.FinishedAt)
}

func eqPtr(a, b *int) bool { return a == b || (a != nil && b != nil && *a == *b) }

func eqTime(a, b *time.Time) bool { return a == b || (a != nil && b != nil && a.Equal(*b)) }

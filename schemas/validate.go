package schemas

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"
)

// Limits on user input. They keep objects well under NATS' 1 MiB payload
// limit and names usable as hostnames.
const (
	MaxNameLength = 63
	// MaxReplicaSetNameLength leaves room for the "-<8 hex>" suffix of pod
	// names, which must themselves be valid names.
	MaxReplicaSetNameLength = MaxNameLength - 9
	MaxDesiredCount         = 1_000_000
	MaxArgs                 = 1024
	MaxArgLength            = 64 << 10
	MaxLabels               = 64
	MaxImageLength          = 512
	MaxGracePeriodSeconds   = 24 * 60 * 60
)

// FieldError names the offending field so API clients can fix their input.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidateName checks a DNS-1123 label: the form every object name takes
// because names become KV keys, subject tokens, paths and hostnames.
func ValidateName(field, name string, max int) error {
	switch {
	case name == "":
		return fieldErr(field, "must not be empty")
	case len(name) > max:
		return fieldErr(field, "must be at most %d characters, got %d", max, len(name))
	case !nameRE.MatchString(name):
		return fieldErr(field, "%q is not a valid name: use lowercase letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

var (
	labelNameRE  = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	labelValueRE = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)
)

// ValidateLabels applies Kubernetes' label syntax: an optional DNS prefix
// and '/', a name of at most 63 characters, and a value of at most 63.
func ValidateLabels(field string, labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fieldErr(field, "at most %d labels, got %d", MaxLabels, len(labels))
	}
	for k, v := range labels {
		key := k
		if prefix, rest, ok := strings.Cut(k, "/"); ok {
			if prefix == "" || len(prefix) > 253 || !labelNameRE.MatchString(prefix) {
				return fieldErr(field, "label key %q has an invalid prefix", k)
			}
			key = rest
		}
		if key == "" || len(key) > MaxNameLength || !labelNameRE.MatchString(key) {
			return fieldErr(field, "label key %q is invalid: at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric", k)
		}
		if len(v) > MaxNameLength || !labelValueRE.MatchString(v) {
			return fieldErr(field+"."+k, "label value %q is invalid: at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric", v)
		}
	}
	return nil
}

// ValidateImage checks that ref parses as an image reference, so a bad one is
// refused at the API instead of failing later on a node.
func ValidateImage(field, ref string) error {
	switch {
	case ref == "":
		return fieldErr(field, "must not be empty")
	case len(ref) > MaxImageLength:
		return fieldErr(field, "must be at most %d characters", MaxImageLength)
	}
	// The distribution grammar first: go-containerregistry alone lets
	// through path tricks such as "../x".
	if !imageRefRE.MatchString(ref) {
		return fieldErr(field, "%q is not a valid image reference: want [registry[:port]/]name[:tag][@sha256:digest] with lowercase path components", ref)
	}
	if _, err := name.ParseReference(ref); err != nil {
		return fieldErr(field, "%q is not a valid image reference: %v", ref, err)
	}
	return nil
}

// imageRefRE is the reference grammar of the distribution project.
var imageRefRE = regexp.MustCompile(`^` +
	`(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)/)?` + // registry
	`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` + // path
	`(?::[\w][\w.-]{0,127})?` + // tag
	`(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`) // digest

func validateCommand(field string, cmd []string) error {
	if cmd == nil {
		return nil // the image's entrypoint and command apply
	}
	if len(cmd) == 0 || cmd[0] == "" {
		return fieldErr(field, "must not be empty when given (omit it to use the image's command)")
	}
	if len(cmd) > MaxArgs {
		return fieldErr(field, "at most %d arguments", MaxArgs)
	}
	for i, a := range cmd {
		if len(a) > MaxArgLength {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), "at most %d bytes", MaxArgLength)
		}
		if strings.ContainsRune(a, 0) || !utf8.ValidString(a) {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), "must be valid UTF-8 without NUL bytes")
		}
	}
	return nil
}

func validateGrace(field string, g *int64) error {
	if g != nil && (*g < 0 || *g > MaxGracePeriodSeconds) {
		return fieldErr(field, "must be between 0 and %d", MaxGracePeriodSeconds)
	}
	return nil
}

func validateContainerName(field, n string) error {
	if n == "" {
		return nil
	}
	return ValidateName(field, n, MaxNameLength)
}

// Validate checks the user-writable fields of a pod.
func (p *Pod) Validate() error {
	return errors.Join(
		ValidateName("name", p.Name, MaxNameLength),
		ValidateLabels("labels", p.Labels),
		validateContainerName("containerName", p.ContainerName),
		p.PodSpec.validate(""),
		validateOptionalName("nodeName", p.NodeName),
		validateOptionalName("owner", p.Owner),
		validatePhase(p.Status),
	)
}

// validate checks a pod spec; prefix names where it sits ("template.").
func (s *PodSpec) validate(prefix string) error {
	errs := []error{
		ValidateImage(prefix+"image", s.Image),
		validateCommand(prefix+"command", s.Command),
		validateGrace(prefix+"terminationGracePeriodSeconds", s.TerminationGracePeriodSeconds),
		ValidateLabels(prefix+"nodeSelector", s.NodeSelector),
		s.Resources.validatePod(prefix + "resources"),
	}
	switch s.RestartPolicy {
	case "", RestartAlways, RestartOnFailure, RestartNever:
	default:
		errs = append(errs, fieldErr(prefix+"restartPolicy", "must be Always, OnFailure or Never, got %q", s.RestartPolicy))
	}
	if len(s.Env) > MaxArgs {
		errs = append(errs, fieldErr(prefix+"env", "at most %d variables", MaxArgs))
	}
	for i, e := range s.Env {
		f := fmt.Sprintf("%senv[%d]", prefix, i)
		if !envNameRE.MatchString(e.Name) {
			errs = append(errs, fieldErr(f+".name", "%q is not a valid variable name: letters, digits and '_', not starting with a digit", e.Name))
		}
		if len(e.Value) > MaxArgLength || strings.ContainsRune(e.Value, 0) || !utf8.ValidString(e.Value) {
			errs = append(errs, fieldErr(f+".value", "must be valid UTF-8 without NUL bytes, at most %d bytes", MaxArgLength))
		}
	}
	return errors.Join(errs...)
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,254}$`)

// MaxPids bounds a pod's pids limit to what Linux allows.
const MaxPids = 1 << 22

func (r ResourceList) validatePod(field string) error {
	var errs []error
	if r.CPU != "" {
		if v, err := ParseCPU(r.CPU); err != nil {
			errs = append(errs, fieldErr(field+".cpu", "%v", err))
		} else if v < 1 {
			errs = append(errs, fieldErr(field+".cpu", "must be at least 1m"))
		}
	}
	if r.Memory != "" {
		if v, err := ParseMemory(r.Memory); err != nil {
			errs = append(errs, fieldErr(field+".memory", "%v", err))
		} else if v < 1<<20 {
			// Below a MiB no process even starts; refuse it early.
			errs = append(errs, fieldErr(field+".memory", "must be at least 1Mi"))
		}
	}
	if r.EphemeralStorage != "" {
		if v, err := ParseMemory(r.EphemeralStorage); err != nil {
			errs = append(errs, fieldErr(field+".ephemeral-storage", "%v", err))
		} else if v < 1 {
			errs = append(errs, fieldErr(field+".ephemeral-storage", "must be positive"))
		}
	}
	if r.Pids < 0 || r.Pids > MaxPids {
		errs = append(errs, fieldErr(field+".pids", "must be between 1 and %d", MaxPids))
	}
	if r.Pods != 0 {
		errs = append(errs, fieldErr(field+".pods", "is a node capacity, not a pod resource"))
	}
	return errors.Join(errs...)
}

// CPUMilli returns the CPU quantity in millicores, 0 when unset or invalid
// (objects are validated on the way in).
func (r ResourceList) CPUMilli() int64 {
	if r.CPU == "" {
		return 0
	}
	v, _ := ParseCPU(r.CPU)
	return v
}

// EphemeralStorageBytes returns the ephemeral-storage limit in bytes, 0 when
// unset or invalid.
func (r ResourceList) EphemeralStorageBytes() int64 {
	if r.EphemeralStorage == "" {
		return 0
	}
	v, _ := ParseMemory(r.EphemeralStorage)
	return v
}

// MemoryBytes returns the memory quantity in bytes, 0 when unset or invalid.
func (r ResourceList) MemoryBytes() int64 {
	if r.Memory == "" {
		return 0
	}
	v, _ := ParseMemory(r.Memory)
	return v
}

func validateOptionalName(field, n string) error {
	if n == "" {
		return nil
	}
	return ValidateName(field, n, MaxNameLength)
}

func validatePhase(p PodPhase) error {
	switch p {
	case "", PodPending, PodRunning, PodSucceeded, PodFailed, PodUnknown:
		return nil
	}
	return fieldErr("status", "unknown phase %q", p)
}

// Validate checks a replicaset as a user submits it.
func (rs *ReplicaSet) Validate() error {
	errs := []error{
		ValidateName("name", rs.Name, MaxReplicaSetNameLength),
		ValidateLabels("labels", rs.Labels),
		ValidateLabels("selector", rs.Selector),
		ValidateLabels("template.labels", rs.Template.Labels),
		validateContainerName("template.name", rs.Template.Name),
		rs.Template.PodSpec.validate("template."),
	}
	// Kubernetes refuses other policies too: a pod that may end would be
	// replaced by the replicaset at once, every time it ends.
	switch rs.Template.RestartPolicy {
	case "", RestartAlways:
	case RestartOnFailure, RestartNever:
		errs = append(errs, fieldErr("template.restartPolicy", "must be Always in a replicaset, got %q", rs.Template.RestartPolicy))
	}
	if rs.DesiredCount < 0 || rs.DesiredCount > MaxDesiredCount {
		errs = append(errs, fieldErr("desiredCount", "must be between 0 and %d, got %d", MaxDesiredCount, rs.DesiredCount))
	}
	if len(rs.Selector) == 0 {
		errs = append(errs, fieldErr("selector", "must not be empty: it decides which pods belong to the replicaset"))
	}
	// A selector that does not match the template's labels would make the
	// controller create pods forever without ever counting them.
	if len(rs.Template.Labels) > 0 && !SelectorMatches(rs.Selector, rs.Template.Labels) {
		errs = append(errs, fieldErr("template.labels", "must match selector"))
	}
	return errors.Join(errs...)
}

// Validate checks a node object.
func (n *Node) Validate() error {
	return errors.Join(
		ValidateName("name", n.Name, MaxNameLength),
		ValidateLabels("labels", n.Labels),
	)
}

// SelectorMatches reports whether every selector pair is in labels. An empty
// selector matches nothing, so a mistake never selects every pod.
func SelectorMatches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

package schemas

import (
	"maps"
	"slices"
	"time"
)

// DeepCopy methods give a copy that shares nothing mutable with the
// original, as Kubernetes' generated deepcopy does. Caches hand out shared
// pointers that nobody may modify; a writer copies first. Written by hand
// (a msgpack round trip cost three times a bind's own encoding); the test
// fills every field by reflection, so a field added without a line here
// fails it.

// deepCopy returns an independent copy of m.
func (m ObjectMeta) deepCopy() ObjectMeta {
	m.Labels = maps.Clone(m.Labels)
	m.Annotations = maps.Clone(m.Annotations)
	m.Finalizers = slices.Clone(m.Finalizers)
	m.OwnerReferences = slices.Clone(m.OwnerReferences) // OwnerReference holds only values
	m.ManagedFields = slices.Clone(m.ManagedFields)
	m.DeletionTimestamp = clonePtr(m.DeletionTimestamp)
	m.DeletionGracePeriodSeconds = clonePtr(m.DeletionGracePeriodSeconds)
	return m
}

// deepCopy returns an independent copy of s.
func (s PodSpec) deepCopy() PodSpec {
	s.Command = slices.Clone(s.Command)
	s.Env = slices.Clone(s.Env) // EnvVar holds only strings
	s.NodeSelector = maps.Clone(s.NodeSelector)
	s.TerminationGracePeriodSeconds = clonePtr(s.TerminationGracePeriodSeconds)
	s.Ports = slices.Clone(s.Ports)
	return s
}

// DeepCopyPodSpec returns an independent copy of s.
func (s *PodSpec) DeepCopyPodSpec() *PodSpec {
	c := s.deepCopy()
	return &c
}

// DeepCopy returns an independent copy of p.
func (p *Pod) DeepCopy() *Pod {
	if p == nil {
		return nil
	}
	out := *p
	out.ObjectMeta = p.ObjectMeta.deepCopy()
	out.PodSpec = p.PodSpec.deepCopy()
	out.ExitCode = clonePtr(p.ExitCode)
	out.StartedAt = clonePtr(p.StartedAt)
	out.FinishedAt = clonePtr(p.FinishedAt)
	return &out
}

// DeepCopy returns an independent copy of rs.
func (rs *ReplicaSet) DeepCopy() *ReplicaSet {
	if rs == nil {
		return nil
	}
	out := *rs
	out.ObjectMeta = rs.ObjectMeta.deepCopy()
	out.Selector = maps.Clone(rs.Selector)
	out.Template.Labels = maps.Clone(rs.Template.Labels)
	out.Template.Annotations = maps.Clone(rs.Template.Annotations)
	out.Template.PodSpec = rs.Template.PodSpec.deepCopy()
	return &out
}

// DeepCopy returns an independent copy of n.
func (n *Node) DeepCopy() *Node {
	if n == nil {
		return nil
	}
	out := *n
	out.ObjectMeta = n.ObjectMeta.deepCopy()
	out.Conditions = slices.Clone(n.Conditions)
	return &out
}

// DeepCopy returns an independent copy of ns.
func (ns *Namespace) DeepCopy() *Namespace {
	if ns == nil {
		return nil
	}
	out := *ns
	out.ObjectMeta = ns.ObjectMeta.deepCopy()
	return &out
}

func clonePtr[T int | int64 | time.Time](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

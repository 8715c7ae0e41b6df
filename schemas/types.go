package schemas

import (
	"encoding/json"
	"strconv"
	"time"
)

// ObjectMeta is carried by every API object. Fields are flat on the object
// (not nested under "metadata") to keep the original MiniKu JSON shape.
type ObjectMeta struct {
	Name string `json:"name"`
	UID  string `json:"uid,omitempty"`
	// ResourceVersion is the KV revision the object was read at. It is never
	// stored inside the value (the revision is only known after the write);
	// the bus layer fills it in on every read. Clients send it back on PUT to
	// get compare-and-swap semantics.
	ResourceVersion uint64            `json:"resourceVersion,omitempty"`
	CreatedAt       time.Time         `json:"createdAt,omitzero"`
	Labels          map[string]string `json:"labels,omitempty"`

	// The rest is what the Kubernetes API round-trips; the seed API shows
	// it only when set, so its responses for seed objects do not change.
	// Annotations hold, among others, kubectl apply's
	// kubectl.kubernetes.io/last-applied-configuration: without them
	// apply cannot compute its next patch.
	Annotations map[string]string `json:"annotations,omitempty"`
	// GenerateName is the prefix a name was generated from.
	GenerateName string `json:"generateName,omitempty"`
	// Generation counts spec changes: 1 at creation, bumped by every
	// update that changes the spec.
	Generation int64 `json:"generation,omitempty"`
	// Finalizers hold a deletion until each is removed.
	Finalizers      []string         `json:"finalizers,omitempty"`
	OwnerReferences []OwnerReference `json:"ownerReferences,omitempty"`
	// ManagedFields is Kubernetes' metadata.managedFields as JSON, kept
	// opaque so server-side apply can keep it without MiniKu modelling it.
	ManagedFields json.RawMessage `json:"managedFields,omitempty"`
	// DeletionTimestamp set means the object is being deleted: a delete
	// found finalizers (or, for a pod, a kubelet must stop it first), and
	// the object goes once the last finalizer is removed.
	DeletionTimestamp *time.Time `json:"deletionTimestamp,omitempty"`
	// DeletionGracePeriodSeconds is what is left of the grace a delete
	// gave: a pod's kubelet stops its container within it; 0 for every
	// other kind (Kubernetes' metadata.deletionGracePeriodSeconds).
	DeletionGracePeriodSeconds *int64 `json:"deletionGracePeriodSeconds,omitempty"`
}

// OwnerReference points at an object this one belongs to, as in
// Kubernetes' metadata.ownerReferences.
type OwnerReference struct {
	APIVersion         string `json:"apiVersion"`
	Kind               string `json:"kind"`
	Name               string `json:"name"`
	UID                string `json:"uid"`
	Controller         bool   `json:"controller,omitempty"`
	BlockOwnerDeletion bool   `json:"blockOwnerDeletion,omitempty"`
}

// GetMeta lets generic code (the bus, the apiserver) reach the metadata.
func (m *ObjectMeta) GetMeta() *ObjectMeta { return m }

// PodPhase is the coarse state of a pod, as in Kubernetes.
type PodPhase string

const (
	PodPending   PodPhase = "Pending"
	PodRunning   PodPhase = "Running"
	PodSucceeded PodPhase = "Succeeded"
	PodFailed    PodPhase = "Failed"
	PodUnknown   PodPhase = "Unknown"
)

// Terminal reports whether a pod in this phase will never run again.
func (p PodPhase) Terminal() bool { return p == PodSucceeded || p == PodFailed }

// DefaultTerminationGracePeriod is Kubernetes' default time between SIGTERM
// and SIGKILL when a pod is stopped.
const DefaultTerminationGracePeriod = 30 * time.Second

// RestartPolicy says when the kubelet restarts a pod's exited container in
// place, as in Kubernetes.
type RestartPolicy string

const (
	RestartAlways    RestartPolicy = "Always"
	RestartOnFailure RestartPolicy = "OnFailure"
	RestartNever     RestartPolicy = "Never"
)

// EnvVar is one environment variable of a container.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ResourceList holds Kubernetes quantities. On a pod they are both what the
// scheduler reserves and the cgroup limits the runtime enforces (requests
// equal limits: Kubernetes' Guaranteed class); on a node, its capacity.
type ResourceList struct {
	CPU    string `json:"cpu,omitempty"`    // "500m", "2"
	Memory string `json:"memory,omitempty"` // "64Mi", "1G"
	Pids   int64  `json:"pids,omitempty"`   // pod only: most processes the container may have
	Pods   int    `json:"pods,omitempty"`   // node only: most pods it takes
	// EphemeralStorage (pod only) bounds the container's writable layer and
	// logs; past it the kubelet evicts the pod, as Kubernetes does.
	EphemeralStorage string `json:"ephemeral-storage,omitempty"` // "1Gi"
}

// PodSpec is what a pod runs; shared by pods and replicaset templates.
type PodSpec struct {
	Image string `json:"image"`
	// Command replaces the image's entrypoint and command when set.
	Command      []string          `json:"command,omitempty"`
	Env          []EnvVar          `json:"env,omitempty"`
	Resources    ResourceList      `json:"resources,omitzero"`
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// RestartPolicy defaults to Always.
	RestartPolicy RestartPolicy `json:"restartPolicy,omitempty"`
	// HostNetwork keeps the host's network namespace; by default a pod
	// gets its own with only loopback.
	HostNetwork bool `json:"hostNetwork,omitempty"`
	// TerminationGracePeriodSeconds bounds how long a stopping container
	// gets between SIGTERM and SIGKILL; nil means the 30 s default.
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
	// Ports the container listens on: informational, as in Kubernetes
	// (nothing is published), but kept and shown.
	Ports []ContainerPort `json:"ports,omitempty"`
}

// ContainerPort is a port the container listens on.
type ContainerPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"` // TCP (default), UDP or SCTP
}

// Pod is one container scheduled onto one node.
type Pod struct {
	ObjectMeta

	// Spec: written by the user (or the replicaset controller) at creation.
	ContainerName string `json:"containerName,omitempty"`
	PodSpec
	// Owner names the replicaset that created the pod; OwnerUID guards
	// against a new replicaset of the same name adopting old pods.
	Owner    string `json:"owner,omitempty"`
	OwnerUID string `json:"ownerUid,omitempty"`

	// NodeName is set once by the scheduler (or by the user to bypass it).
	NodeName string `json:"nodeName"`

	// DeletionTimestamp (ObjectMeta's) set means the pod is Terminating:
	// its kubelet stops the container, then removes the object.
	// DeletionGracePeriodSeconds is the grace the kubelet gives the
	// container: the pod's own, or the one the delete request asked for.

	// Status: written by the kubelet (and by the node controller for lost nodes).
	Status       PodPhase   `json:"status"`
	ContainerID  string     `json:"containerId"`
	ExitCode     *int       `json:"exitCode,omitempty"`
	Reason       string     `json:"reason,omitempty"`
	Message      string     `json:"message,omitempty"`
	RestartCount int        `json:"restartCount,omitempty"`
	StartedAt    *time.Time `json:"startedAt,omitempty"`
	FinishedAt   *time.Time `json:"finishedAt,omitempty"`
}

// Restart reports whether a container that exited with code should be
// restarted in place under the pod's restart policy.
func (s *PodSpec) Restart(code int) bool {
	switch s.RestartPolicy {
	case RestartNever:
		return false
	case RestartOnFailure:
		return code != 0
	default:
		return true
	}
}

// GracePeriod returns the pod's stop grace period.
func (s *PodSpec) GracePeriod() time.Duration {
	if s.TerminationGracePeriodSeconds == nil {
		return DefaultTerminationGracePeriod
	}
	return time.Duration(*s.TerminationGracePeriodSeconds) * time.Second
}

// DeletionGrace is how long a Terminating pod's container gets between
// SIGTERM and SIGKILL.
func (p *Pod) DeletionGrace() time.Duration {
	if p.DeletionGracePeriodSeconds != nil {
		return time.Duration(*p.DeletionGracePeriodSeconds) * time.Second
	}
	return p.GracePeriod()
}

// PodTemplate is what a replicaset stamps its pods from.
type PodTemplate struct {
	// Name is the container name given to every pod of the template.
	Name string `json:"name,omitempty"`
	// Labels default to the replicaset's selector when empty.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are copied onto every pod (Helm charts put config
	// checksums here).
	Annotations map[string]string `json:"annotations,omitempty"`
	PodSpec
}

// ReplicaSet keeps DesiredCount pods of its template alive.
type ReplicaSet struct {
	ObjectMeta

	DesiredCount int               `json:"desiredCount"`
	Selector     map[string]string `json:"selector"`
	Template     PodTemplate       `json:"template"`

	// Status, written only by the controller.
	// CurrentCount counts the replicaset's pods that are not terminal
	// (Kubernetes' status.replicas); ReadyCount those Running.
	CurrentCount int `json:"currentCount"`
	ReadyCount   int `json:"readyCount"`
}

// PodLabels returns the labels a pod of this replicaset gets.
func (rs *ReplicaSet) PodLabels() map[string]string {
	src := rs.Template.Labels
	if len(src) == 0 {
		src = rs.Selector
	}
	out := make(map[string]string, len(src))
	for k, v := range src {
		out[k] = v
	}
	return out
}

// NamespacePhase is a namespace's lifecycle state, as in Kubernetes.
type NamespacePhase string

const (
	NamespaceActive      NamespacePhase = "Active"
	NamespaceTerminating NamespacePhase = "Terminating"
)

// Namespace groups namespaced objects; deleting it marks it Terminating
// until everything in it is gone.
type Namespace struct {
	ObjectMeta
	Phase NamespacePhase `json:"phase"`
}

// NodeStatus is whether the scheduler may use a node.
type NodeStatus string

const (
	NodeReady    NodeStatus = "Ready"
	NodeNotReady NodeStatus = "NotReady"
)

// Node is a kubelet's registration and its liveness.
type Node struct {
	ObjectMeta

	Status NodeStatus `json:"status"`
	// LastHeartbeat is the kubelet's clock at its last heartbeat. The node
	// controller does not compare it with its own clock (hosts drift); it
	// only watches whether it changes.
	LastHeartbeat time.Time `json:"lastHeartbeat"`
	Hostname      string    `json:"hostname,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	// Capacity is what the kubelet offers: cpu, memory and pods.
	Capacity ResourceList `json:"capacity,omitzero"`
	// Unschedulable (cordoned) nodes keep their pods but get no new ones.
	Unschedulable bool `json:"unschedulable,omitempty"`
	// Conditions are the kubelet's pressure reports (MemoryPressure,
	// DiskPressure), as in Kubernetes' node.status.conditions.
	Conditions []NodeCondition `json:"conditions,omitempty"`
}

// Node condition types the kubelet's eviction manager reports.
const (
	NodeMemoryPressure = "MemoryPressure"
	NodeDiskPressure   = "DiskPressure"
)

// NodeCondition is one Kubernetes-style node condition.
type NodeCondition struct {
	Type   string `json:"type"`   // MemoryPressure, DiskPressure
	Status string `json:"status"` // "True" or "False"
	Reason string `json:"reason,omitempty"`
	// Message says what was measured against which threshold.
	Message            string    `json:"message,omitempty"`
	LastTransitionTime time.Time `json:"lastTransitionTime,omitzero"`
}

// Condition returns the node's condition of type t, if it has one.
func (n *Node) Condition(t string) (NodeCondition, bool) {
	for _, c := range n.Conditions {
		if c.Type == t {
			return c, true
		}
	}
	return NodeCondition{}, false
}

// Event is the payload of every bus subject: a hint that an object changed.
// Receivers must treat KV as the truth and re-read the object.
type Event struct {
	Type     string    `json:"type"` // the subject's verb, e.g. "created", "assigned", "running"
	Kind     string    `json:"kind"` // "Pod", "ReplicaSet", "Node"
	Name     string    `json:"name"`
	Node     string    `json:"node,omitempty"`
	Revision uint64    `json:"revision,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Message  string    `json:"message,omitempty"`
	Time     time.Time `json:"time"`
}

// Object kinds as used in events.
const (
	KindPod        = "Pod"
	KindReplicaSet = "ReplicaSet"
	KindNode       = "Node"
)

// Event types of an ObjectEvent, as in Kubernetes.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// ObjectEvent is a Kubernetes-style Event: a record, for people, of what
// happened to an object (Scheduled, Pulled, Started, BackOff, Killing,
// NodeNotReady, Evicted, ...). Kept in the EVENTS stream with a retention
// limit and published on event.<kind>.<name>.
type ObjectEvent struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`   // Normal or Warning
	Reason    string    `json:"reason"` // CamelCase, e.g. Scheduled
	Kind      string    `json:"kind"`   // Pod, ReplicaSet, Node
	Name      string    `json:"name"`
	Node      string    `json:"node,omitempty"`
	Component string    `json:"component,omitempty"` // who reported it
	Message   string    `json:"message,omitempty"`
	// Seq is the event's position in the stream, filled in on read.
	Seq uint64 `json:"seq,omitempty"`
	// Index is the event's place among those sent in one message (which
	// share Seq), filled in on read; it keeps their names apart.
	Index int `json:"-" msgpack:"-"`
}

// GetMeta is the metadata the Kubernetes API shows for ev, derived: the
// object's name and the stream position (events have no metadata of
// their own), the position as resource version, the time as creation.
func (ev *ObjectEvent) GetMeta() *ObjectMeta {
	return &ObjectMeta{Name: ev.MetaName(), ResourceVersion: ev.Seq, CreatedAt: ev.Time}
}

// MetaName is ev's name on the Kubernetes API: <object>.<seq in hex>,
// with -<index> for the second and later events of one message.
func (ev *ObjectEvent) MetaName() string {
	name := ev.Name + "." + strconv.FormatUint(ev.Seq, 16)
	if ev.Index > 0 {
		name += "-" + strconv.Itoa(ev.Index)
	}
	return name
}

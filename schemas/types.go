package schemas

import "time"

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

// Pod is one container scheduled onto one node.
type Pod struct {
	ObjectMeta

	// Spec: written by the user (or the replicaset controller) at creation.
	ContainerName string `json:"containerName,omitempty"`
	Image         string `json:"image"`
	// Command replaces the image's entrypoint and command when set.
	Command []string `json:"command,omitempty"`
	// TerminationGracePeriodSeconds bounds how long a stopping container
	// gets between SIGTERM and SIGKILL; nil means the 30 s default.
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
	// Owner names the replicaset that created the pod; OwnerUID guards
	// against a new replicaset of the same name adopting old pods.
	Owner    string `json:"owner,omitempty"`
	OwnerUID string `json:"ownerUid,omitempty"`

	// NodeName is set once by the scheduler (or by the user to bypass it).
	NodeName string `json:"nodeName"`

	// Status: written by the kubelet (and by the node controller for lost nodes).
	Status      PodPhase   `json:"status"`
	ContainerID string     `json:"containerId"`
	ExitCode    *int       `json:"exitCode,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	Message     string     `json:"message,omitempty"`
	StartedAt   *time.Time `json:"startedAt,omitempty"`
	FinishedAt  *time.Time `json:"finishedAt,omitempty"`
}

// GracePeriod returns the pod's stop grace period.
func (p *Pod) GracePeriod() time.Duration {
	if p.TerminationGracePeriodSeconds == nil {
		return DefaultTerminationGracePeriod
	}
	return time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
}

// PodTemplate is what a replicaset stamps its pods from.
type PodTemplate struct {
	// Name is the container name given to every pod of the template.
	Name string `json:"name,omitempty"`
	// Labels default to the replicaset's selector when empty.
	Labels                        map[string]string `json:"labels,omitempty"`
	Image                         string            `json:"image"`
	Command                       []string          `json:"command,omitempty"`
	TerminationGracePeriodSeconds *int64            `json:"terminationGracePeriodSeconds,omitempty"`
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

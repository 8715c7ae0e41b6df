package bus

import "github.com/miniku/miniku/schemas"

// Subjects of the events MiniKu publishes. Payloads are msgpack-encoded
// schemas.Event. They are hints for speed; nothing depends on receiving them.
const (
	SubjPodCreated   = "pod.created"
	SubjPodAssigned  = "pod.assigned" // + "." + node: each kubelet listens only to its own
	SubjPodRunning   = "pod.running"
	SubjPodSucceeded = "pod.succeeded"
	SubjPodFailed    = "pod.failed"
	SubjPodDeleted   = "pod.deleted"

	SubjReplicaSetCreated = "replicaset.created"
	SubjReplicaSetUpdated = "replicaset.updated"
	SubjReplicaSetDeleted = "replicaset.deleted"
	SubjReplicaSetScaled  = "replicaset.scaled"

	SubjNodeHeartbeat = "node.heartbeat" // + "." + node
	SubjNodeReady     = "node.ready"
	SubjNodeNotReady  = "node.notready"
)

// NodeSubject appends a node name token to a per-node subject.
func NodeSubject(base, node string) string { return base + "." + node }

// Bucket names, declared with who may use them in schemas.Stores.
const (
	BucketPods            = schemas.BucketPods
	BucketReplicaSets     = schemas.BucketReplicaSets
	BucketNodes           = schemas.BucketNodes
	BucketConfigMaps      = schemas.BucketConfigMaps
	BucketServiceAccounts = schemas.BucketServiceAccounts
	// BucketSecrets is readable by the apiserver's NATS user only, and
	// its values are encrypted (Options.SecretsKey).
	BucketSecrets = schemas.BucketSecrets
	// BucketNamespaces holds the Namespace objects (Kubernetes API).
	BucketNamespaces = schemas.BucketNamespaces
)

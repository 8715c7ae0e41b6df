package schemas

// Store declares one KV bucket: which kind it holds and who may use it.
// The bus creates, compacts and grants NATS permissions on the buckets
// from this table, and schemas/kinds names each kind's bucket from it, so
// a new bucket is one line here (and its typed field on bus.Conn).
type Store struct {
	Bucket string
	// Kind is the kind of the objects it holds; "" for a bucket of no API
	// kind (leases).
	Kind string
	// Objects: it holds API objects, which are compacted and whose
	// streams bound their consumers' lives; false for the leases, which
	// the lease code creates and looks after itself.
	Objects bool
	// Private: only the apiserver's NATS user may read or write it (every
	// other user is denied its subjects), and its values are encrypted;
	// a connection has it only with the key.
	Private bool
	// Writers are the roles that may write it besides the apiserver and
	// the controller, which write every bucket that is not private.
	// (A kubelet writes only its own Node's key: a per-key rule, kept
	// with its permissions.)
	Writers []Role
}

// Role is a component as the NATS permissions know it.
type Role string

// RoleScheduler binds pods and holds its lease.
const RoleScheduler Role = "scheduler"

// Bucket names.
const (
	BucketPods            = "pods"
	BucketReplicaSets     = "replicasets"
	BucketNodes           = "nodes"
	BucketNamespaces      = "namespaces"
	BucketLeases          = "leases"
	BucketConfigMaps      = "configmaps"
	BucketServiceAccounts = "serviceaccounts"
	BucketSecrets         = "secrets"
)

// Stores are every KV bucket of MiniKu.
var Stores = []Store{
	{Bucket: BucketPods, Kind: KindPod, Objects: true, Writers: []Role{RoleScheduler}},
	{Bucket: BucketReplicaSets, Kind: KindReplicaSet, Objects: true},
	{Bucket: BucketNodes, Kind: KindNode, Objects: true},
	{Bucket: BucketNamespaces, Kind: "Namespace", Objects: true},
	// The scheduler's and controller's leader election.
	{Bucket: BucketLeases, Writers: []Role{RoleScheduler}},
	{Bucket: BucketConfigMaps, Kind: "ConfigMap", Objects: true},
	{Bucket: BucketServiceAccounts, Kind: "ServiceAccount", Objects: true},
	{Bucket: BucketSecrets, Kind: "Secret", Objects: true, Private: true},
}

// StoreBuckets returns the names of the stores keep accepts, in the
// table's order.
func StoreBuckets(keep func(Store) bool) []string {
	var out []string
	for _, s := range Stores {
		if keep(s) {
			out = append(out, s.Bucket)
		}
	}
	return out
}

// Writes reports whether role may write the store.
func (s Store) Writes(role Role) bool {
	for _, r := range s.Writers {
		if r == role {
			return true
		}
	}
	return false
}

package kinds

// Adding a kind: a stored type in schemas (with DeepCopy, held by
// schemas' reflection test), a declaration here (<kind>.go: Info, the
// conversions, the strategy, the table) registered below, and its row in
// TestDeclarations. The generic layers (REST handler, discovery, store
// buckets) take it from the registry; only a kind with its own behaviour
// (a controller, a subresource) needs code elsewhere.
func init() {
	Register(Node)
	Register(Namespace)
	Register(Pod)
	Register(ReplicaSet)
	Register(Event)
}

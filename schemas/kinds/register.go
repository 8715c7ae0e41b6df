package kinds

func init() {
	Register(Node)
	Register(Namespace)
	Register(Pod)
	Register(ReplicaSet)
	Register(Event)
}

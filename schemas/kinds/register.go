package kinds

func init() {
	Register(Node)
	Register(Namespace)
}

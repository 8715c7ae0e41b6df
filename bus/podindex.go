package bus

import "github.com/miniku/miniku/schemas"

// The pod indexes components share, declared once: a component adds those
// it reads (pods.AddIndex(bus.PodsByNode, bus.PodNode)); on a cache shared
// by several components, the first to add one builds it for all.
const (
	// PodsByNode holds bound pods by node name.
	PodsByNode = "node"
	// PodsByOwner holds owned pods by their owner's name: a replicaset
	// deleted (or replaced by one of the same name) still finds its pods.
	PodsByOwner = "owner"
	// PodsByOwnerUID holds owned pods by their owner's UID.
	PodsByOwnerUID = "ownerUID"
)

// PodNode is the PodsByNode index function.
func PodNode(p *schemas.Pod) []string { return nonEmpty(p.NodeName) }

// PodOwner is the PodsByOwner index function.
func PodOwner(p *schemas.Pod) []string { return nonEmpty(p.Owner) }

// PodOwnerUID is the PodsByOwnerUID index function.
func PodOwnerUID(p *schemas.Pod) []string { return nonEmpty(p.OwnerUID) }

func nonEmpty(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

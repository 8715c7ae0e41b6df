package garbagecollector

import (
	"slices"
	"sort"

	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
)

// Object is what the decision needs of one stored object.
type Object struct {
	Resource string // "pods"
	Name     string
	UID      string
	// Owners are its ownerReferences, a pod's replicaset (owner and
	// ownerUid) included.
	Owners     []schemas.OwnerReference
	Finalizers []string
	Deleting   bool // deletionTimestamp set
	// Removable: marked, and neither a finalizer nor any grace holds it.
	Removable bool
}

// Verb is what an Action does.
type Verb string

const (
	// Remove removes a marked object nothing holds any more (a write
	// took its last finalizer and crashed before removing it).
	Remove Verb = "remove"
	// Delete deletes the target as a Background delete would: a pod is
	// stopped gracefully, finalizers are honoured.
	Delete Verb = "delete"
	// Unown removes the target's references to OwnerUID.
	Unown Verb = "unown"
	// Finish removes Finalizer from the target, done with it.
	Finish Verb = "finish"
)

// Action is one write the collector makes. Delete and Unown of a
// dependent whose owners look gone are made only once live reads confirm
// each of them (Gone) is: a cache may not have seen an owner created just
// before its dependents.
type Action struct {
	Verb      Verb
	Resource  string
	Name, UID string
	OwnerUID  string                   // Unown
	Finalizer string                   // Finish
	Gone      []schemas.OwnerReference // the owners to confirm gone first
	Why       string
}

// Decide is the garbage collector's decision over every object it sees,
// as kube-controller-manager's garbage collector decides over its graph
// of ownerReferences (by uid):
//   - an owner being deleted with the orphan finalizer has its
//     dependents' references to it removed, then the finalizer;
//   - one with foregroundDeletion has its dependents deleted, and the
//     finalizer removed once none is left;
//   - an object whose owners are all gone is deleted (Background), and
//     references to gone owners are removed from one that keeps others;
//   - a marked object nothing holds is removed.
//
// known says the collector sees the kind an ownerReference names (by
// apiVersion and kind): an owner of another kind is never taken for gone.
func Decide(objs []Object, known func(apiVersion, kind string) bool) []Action {
	byUID := make(map[string]*Object, len(objs))
	dependents := map[string][]*Object{}
	for i := range objs {
		o := &objs[i]
		byUID[o.UID] = o
	}
	for i := range objs {
		o := &objs[i]
		seen := map[string]bool{}
		for _, r := range o.Owners {
			if !seen[r.UID] {
				seen[r.UID] = true
				dependents[r.UID] = append(dependents[r.UID], o)
			}
		}
	}
	var out []Action
	for i := range objs {
		o := &objs[i]
		if o.Removable {
			out = append(out, Action{Verb: Remove, Resource: o.Resource, Name: o.Name, UID: o.UID, Why: "finalized"})
			continue
		}
		deps := dependents[o.UID]
		switch {
		case o.Deleting && slices.Contains(o.Finalizers, kinds.FinalizerOrphan):
			for _, d := range deps {
				out = append(out, Action{Verb: Unown, Resource: d.Resource, Name: d.Name, UID: d.UID, OwnerUID: o.UID, Why: "owner deleted with propagationPolicy Orphan"})
			}
			if len(deps) == 0 {
				out = append(out, Action{Verb: Finish, Resource: o.Resource, Name: o.Name, UID: o.UID, Finalizer: kinds.FinalizerOrphan, Why: "dependents orphaned"})
			}
		case o.Deleting && slices.Contains(o.Finalizers, kinds.FinalizerForeground):
			for _, d := range deps {
				if !d.Deleting {
					out = append(out, Action{Verb: Delete, Resource: d.Resource, Name: d.Name, UID: d.UID, Why: "owner deleted with propagationPolicy Foreground"})
				}
			}
			// Every dependent must be gone, not just marked: a pod
			// goes once its kubelet has stopped it.
			if len(deps) == 0 {
				out = append(out, Action{Verb: Finish, Resource: o.Resource, Name: o.Name, UID: o.UID, Finalizer: kinds.FinalizerForeground, Why: "dependents deleted"})
			}
		}
		if len(o.Owners) == 0 || o.Deleting {
			continue
		}
		var gone []schemas.OwnerReference
		solid := false
		for _, r := range o.Owners {
			switch {
			case byUID[r.UID] != nil, !known(r.APIVersion, r.Kind):
				solid = true
			default:
				gone = append(gone, r)
			}
		}
		switch {
		case len(gone) == 0:
		case !solid:
			out = append(out, Action{Verb: Delete, Resource: o.Resource, Name: o.Name, UID: o.UID, Gone: gone, Why: "owner " + gone[0].Kind + " " + gone[0].Name + " is gone"})
		default:
			for i := range gone {
				out = append(out, Action{Verb: Unown, Resource: o.Resource, Name: o.Name, UID: o.UID, OwnerUID: gone[i].UID, Gone: gone[i : i+1], Why: "owner " + gone[i].Kind + " " + gone[i].Name + " is gone"})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Resource != out[j].Resource {
			return out[i].Resource < out[j].Resource
		}
		return out[i].Name < out[j].Name
	})
	return out
}

package kinds

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/schemas"
)

// The status strategies and the typed writes (pods/binding,
// replicasets/scale) every writer runs: the API's status and binding
// subresources, the kubelet (through the node API), the scheduler and
// the controllers, so none of them can write what the API would refuse.

// ReasonUnschedulable is the scheduler's reason on a pod it cannot place
// (Kubernetes' PodScheduled condition says the same); binding clears it.
const ReasonUnschedulable = reasonUnschedulable

// PreparePodForStatusUpdate keeps p's status and takes everything else
// from old, as Kubernetes' podStatusStrategy resets the spec and the
// metadata a status write sent. The revision stays p's: the write is a
// compare-and-swap at the one its writer read.
func PreparePodForStatusUpdate(p, old *schemas.Pod) {
	st, rv := schemas.PodStatusOf(p), p.ResourceVersion
	*p = *old.DeepCopy()
	schemas.SetPodStatus(p, st)
	p.ResourceVersion = rv
}

var podStatusRename = map[string]string{
	"status": "status.phase", "restartCount": "status.containerStatuses[0].restartCount", "message": "status.message",
}

// ValidatePodStatusUpdate checks a status write: a known phase, a
// terminal phase kept for good, a restart count that only grows.
func ValidatePodStatusUpdate(p, old *schemas.Pod) field.ErrorList {
	errs := validateMetaUpdate(&p.ObjectMeta, &old.ObjectMeta)
	return append(errs, fieldErrors(schemas.ValidatePodStatusUpdate(old, schemas.PodStatusOf(p)), podStatusRename)...)
}

// BindPod is pods/binding: it sets p's node once. A bound or terminating
// pod is a conflict (the message kube-apiserver gives), a bad target a
// field error. Binding clears the scheduler's Unschedulable reason, as
// Kubernetes' binding sets PodScheduled.
func BindPod(p *schemas.Pod, node string) (errs field.ErrorList, conflict error) {
	if err := schemas.ValidateName("target.name", node, schemas.MaxNameLength); err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("target", "name"), node, err.Error())}, nil
	}
	if p.NodeName != "" {
		return nil, fmt.Errorf("pod %s is already assigned to node %q", p.Name, p.NodeName)
	}
	if p.DeletionTimestamp != nil {
		return nil, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", p.Name)
	}
	p.NodeName = node
	if p.Reason == reasonUnschedulable {
		p.Reason, p.Message = "", ""
	}
	return nil, nil
}

// prepareNodeForStatusUpdate keeps n's status (what the kubelet and the
// node controller write) and takes the rest from old.
func prepareNodeForStatusUpdate(n, old *schemas.Node) {
	st := *n
	*n = *old.DeepCopy()
	n.ResourceVersion = st.ResourceVersion
	n.Status, n.LastHeartbeat, n.Reason = st.Status, st.LastHeartbeat, st.Reason
	n.Capacity, n.Conditions, n.Hostname = st.Capacity, st.Conditions, st.Hostname
}

// validateNodeStatusUpdate checks a node status write: a known status,
// conditions True, False or Unknown.
func validateNodeStatusUpdate(n, old *schemas.Node) field.ErrorList {
	errs := validateMetaUpdate(&n.ObjectMeta, &old.ObjectMeta)
	switch n.Status {
	case schemas.NodeReady, schemas.NodeNotReady:
	default:
		errs = append(errs, field.NotSupported(statusPath.Child("conditions").Key("Ready"), string(n.Status),
			[]string{string(schemas.NodeReady), string(schemas.NodeNotReady)}))
	}
	for i, c := range n.Conditions {
		switch c.Status {
		case "True", "False", "Unknown":
		default:
			errs = append(errs, field.NotSupported(statusPath.Child("conditions").Index(i).Child("status"), c.Status, []string{"True", "False", "Unknown"}))
		}
	}
	return append(errs, validateNode(n)...)
}

// prepareReplicaSetForStatusUpdate keeps rs's counts (the controller's)
// and takes the rest from old.
func prepareReplicaSetForStatusUpdate(rs, old *schemas.ReplicaSet) {
	cur, ready, rv := rs.CurrentCount, rs.ReadyCount, rs.ResourceVersion
	*rs = *old.DeepCopy()
	rs.CurrentCount, rs.ReadyCount, rs.ResourceVersion = cur, ready, rv
}

func validateReplicaSetStatusUpdate(rs, old *schemas.ReplicaSet) field.ErrorList {
	errs := validateMetaUpdate(&rs.ObjectMeta, &old.ObjectMeta)
	if rs.CurrentCount < 0 {
		errs = append(errs, field.Invalid(statusPath.Child("replicas"), rs.CurrentCount, "must be greater than or equal to 0"))
	}
	if rs.ReadyCount < 0 {
		errs = append(errs, field.Invalid(statusPath.Child("readyReplicas"), rs.ReadyCount, "must be greater than or equal to 0"))
	}
	if rs.ReadyCount > rs.CurrentCount {
		errs = append(errs, field.Invalid(statusPath.Child("readyReplicas"), rs.ReadyCount, "must be less than or equal to replicas"))
	}
	return append(errs, ValidateReplicaSet(rs)...)
}

package kinds

import (
	"fmt"
	"maps"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/schemas"
)

// KubeletVersion is what nodes report as their kubelet version: the
// Kubernetes API MiniKu follows.
const KubeletVersion = "v1.33.0-miniku"

// Well-known labels and taints, as Kubernetes names them.
const (
	LabelHostname       = "kubernetes.io/hostname"
	LabelOS             = "kubernetes.io/os"
	LabelArch           = "kubernetes.io/arch"
	TaintUnschedulable  = "node.kubernetes.io/unschedulable"
	labelNamespaceName  = "kubernetes.io/metadata.name"
	namespaceFinalizer  = corev1.FinalizerKubernetes
	labelNodeRolePrefix = "node-role.kubernetes.io/"
)

var allVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

// Node is the declaration of v1 Node.
var Node = &Def[*schemas.Node, *corev1.Node]{
	Meta: Info{
		Kind: "Node", ListKind: "NodeList", GroupVersion: schema.GroupVersion{Version: "v1"},
		Resource: "nodes", Singular: "node", ShortNames: []string{"no"},
		Verbs: allVerbs, Subresources: []string{"status"}, Bucket: schemas.BucketNodes,
	},
	New:     func() *schemas.Node { return &schemas.Node{} },
	NewK:    func() *corev1.Node { return &corev1.Node{} },
	NewList: func() runtime.Object { return &corev1.NodeList{} },
	To:      NodeToKube,
	From:    NodeFromKube,
	Create: func(n *schemas.Node, now time.Time) {
		createMeta(&n.ObjectMeta, now)
	},
	Update: func(n, old *schemas.Node) {
		carryMeta(&n.ObjectMeta, &old.ObjectMeta)
		// Status is the kubelet's and the node controller's.
		n.Status, n.LastHeartbeat, n.Reason = old.Status, old.LastHeartbeat, old.Reason
		n.Capacity, n.Conditions, n.Hostname = old.Capacity, old.Conditions, old.Hostname
	},
	Check: validateNode,
	CheckUpdate: func(n, old *schemas.Node) field.ErrorList {
		return append(validateMetaUpdate(&n.ObjectMeta, &old.ObjectMeta), validateNode(n)...)
	},
	Status:      prepareNodeForStatusUpdate,
	CheckStatus: validateNodeStatusUpdate,
	Columns: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Status", Type: "string", Description: "The status of the node"},
		{Name: "Roles", Type: "string", Description: "The roles of the node"},
		ageColumn,
		{Name: "Version", Type: "string", Description: corev1.NodeSystemInfo{}.SwaggerDoc()["kubeletVersion"]},
		{Name: "Internal-IP", Type: "string", Priority: 1, Description: corev1.NodeStatus{}.SwaggerDoc()["addresses"]},
		{Name: "External-IP", Type: "string", Priority: 1, Description: corev1.NodeStatus{}.SwaggerDoc()["addresses"]},
		{Name: "OS-Image", Type: "string", Priority: 1, Description: corev1.NodeSystemInfo{}.SwaggerDoc()["osImage"]},
		{Name: "Kernel-Version", Type: "string", Priority: 1, Description: corev1.NodeSystemInfo{}.SwaggerDoc()["kernelVersion"]},
		{Name: "Container-Runtime", Type: "string", Priority: 1, Description: corev1.NodeSystemInfo{}.SwaggerDoc()["containerRuntimeVersion"]},
	},
	Row: nodeRow,
}

func validateNode(n *schemas.Node) field.ErrorList {
	return append(fieldErrors(n.Validate(), metaRename), validateMeta(&n.ObjectMeta)...)
}

// nodeDefaultLabels are the labels a kubelet puts on its node in
// Kubernetes; MiniKu's kubelets do not store them, so they are shown.
func nodeDefaultLabels(n *schemas.Node) map[string]string {
	host := n.Hostname
	if host == "" {
		host = n.Name
	}
	return map[string]string{LabelHostname: host, LabelOS: goruntime.GOOS, LabelArch: goruntime.GOARCH}
}

func unschedulableTaint() corev1.Taint {
	return corev1.Taint{Key: TaintUnschedulable, Effect: corev1.TaintEffectNoSchedule}
}

// The pressure conditions a kubelet always reports, with what it says
// when there is no pressure.
var nodePressure = []struct{ typ, reason, message string }{
	{schemas.NodeMemoryPressure, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
	{schemas.NodeDiskPressure, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
	{"PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
}

// NodeToKube is n as Kubernetes shows a node.
func NodeToKube(n *schemas.Node) (*corev1.Node, error) {
	meta, err := metaToKube(&n.ObjectMeta, false)
	if err != nil {
		return nil, err
	}
	for k, v := range nodeDefaultLabels(n) {
		if _, ok := meta.Labels[k]; !ok {
			if meta.Labels == nil {
				meta.Labels = map[string]string{}
			}
			meta.Labels[k] = v
		}
	}
	out := &corev1.Node{
		TypeMeta:   metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
		ObjectMeta: meta,
		Spec:       corev1.NodeSpec{Unschedulable: n.Unschedulable},
	}
	if n.Unschedulable {
		out.Spec.Taints = []corev1.Taint{unschedulableTaint()}
	}
	beat := metav1.NewTime(n.LastHeartbeat)
	ready := corev1.NodeCondition{Type: corev1.NodeReady, LastHeartbeatTime: beat, LastTransitionTime: beat}
	switch n.Status {
	case schemas.NodeReady:
		ready.Status, ready.Reason, ready.Message = corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"
	case schemas.NodeNotReady:
		// MiniKu's node controller marks a node NotReady when its
		// heartbeats stop: Kubernetes' Unknown.
		ready.Status, ready.Reason, ready.Message = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status."
	default:
		ready.Status, ready.Reason = corev1.ConditionUnknown, "NodeStatusNeverUpdated"
	}
	if n.Reason != "" {
		ready.Reason = n.Reason
	}
	for _, p := range nodePressure {
		c := corev1.NodeCondition{Type: corev1.NodeConditionType(p.typ), Status: corev1.ConditionFalse,
			Reason: p.reason, Message: p.message, LastHeartbeatTime: beat, LastTransitionTime: beat}
		if got, ok := n.Condition(p.typ); ok {
			c.Status, c.Reason, c.Message = corev1.ConditionStatus(got.Status), got.Reason, got.Message
			if !got.LastTransitionTime.IsZero() {
				c.LastTransitionTime = metav1.NewTime(got.LastTransitionTime)
			}
		}
		out.Status.Conditions = append(out.Status.Conditions, c)
	}
	out.Status.Conditions = append(out.Status.Conditions, ready)
	for _, c := range n.Conditions { // any the kubelet reports beyond those
		if !slices.ContainsFunc(nodePressure, func(p struct{ typ, reason, message string }) bool { return p.typ == c.Type }) {
			out.Status.Conditions = append(out.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeConditionType(c.Type),
				Status: corev1.ConditionStatus(c.Status), Reason: c.Reason, Message: c.Message,
				LastHeartbeatTime: beat, LastTransitionTime: kubeTime(c.LastTransitionTime)})
		}
	}
	capacity, err := nodeResources(n.Capacity)
	if err != nil {
		return nil, fmt.Errorf("kinds: node %s: %w", n.Name, err)
	}
	if len(capacity) > 0 {
		out.Status.Capacity = capacity
		out.Status.Allocatable = capacity.DeepCopy()
	}
	host := n.Hostname
	if host == "" {
		host = n.Name
	}
	out.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: host}}
	out.Status.NodeInfo = corev1.NodeSystemInfo{
		KubeletVersion: KubeletVersion, OperatingSystem: goruntime.GOOS, Architecture: goruntime.GOARCH,
		ContainerRuntimeVersion: "miniku://" + strings.TrimPrefix(KubeletVersion, "v"),
	}
	return out, nil
}

func nodeResources(r schemas.ResourceList) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	if r.CPU != "" {
		q, err := resource.ParseQuantity(r.CPU)
		if err != nil {
			return nil, fmt.Errorf("stored cpu %q: %w", r.CPU, err)
		}
		out[corev1.ResourceCPU] = q
	}
	if r.Memory != "" {
		q, err := resource.ParseQuantity(r.Memory)
		if err != nil {
			return nil, fmt.Errorf("stored memory %q: %w", r.Memory, err)
		}
		out[corev1.ResourceMemory] = q
	}
	if r.EphemeralStorage != "" {
		q, err := resource.ParseQuantity(r.EphemeralStorage)
		if err != nil {
			return nil, fmt.Errorf("stored ephemeral-storage %q: %w", r.EphemeralStorage, err)
		}
		out[corev1.ResourceEphemeralStorage] = q
	}
	if r.Pods != 0 {
		out[corev1.ResourcePods] = *resource.NewQuantity(int64(r.Pods), resource.DecimalSI)
	}
	return out, nil
}

// NodeFromKube is the stored node of a wire one. Refused (the kubelet
// owns them, or MiniKu has no use yet): spec.podCIDR(s), providerID,
// taints other than the cordon taint (which follows
// spec.unschedulable), configSource, externalID; status
// addresses, nodeInfo and the like are the kubelet's and not read back.
func NodeFromKube(k *corev1.Node) (*schemas.Node, field.ErrorList) {
	meta, errs := metaFromKube(&k.ObjectMeta, false)
	n := &schemas.Node{ObjectMeta: meta, Unschedulable: k.Spec.Unschedulable}
	if k.DeletionTimestamp != nil {
		errs = append(errs, notSupported(metaPath.Child("deletionTimestamp"), "set only by a delete of a pod"))
	}
	for _, a := range k.Status.Addresses {
		if a.Type == corev1.NodeHostName && a.Address != n.Name {
			n.Hostname = a.Address
		}
	}
	// Strip the labels ToKube adds, so a read-modify-write stores none.
	def := nodeDefaultLabels(n)
	n.Labels = maps.Clone(n.Labels)
	maps.DeleteFunc(n.Labels, func(key, v string) bool { d, ok := def[key]; return ok && d == v })
	if len(n.Labels) == 0 {
		n.Labels = nil
	}
	sp := specPath
	if k.Spec.PodCIDR != "" || len(k.Spec.PodCIDRs) > 0 {
		errs = append(errs, notSupported(sp.Child("podCIDR"), "pods get addresses from MiniKu's own network"))
	}
	if k.Spec.ProviderID != "" {
		errs = append(errs, notSupported(sp.Child("providerID"), ""))
	}
	if k.Spec.ConfigSource != nil {
		errs = append(errs, notSupported(sp.Child("configSource"), ""))
	}
	if k.Spec.DoNotUseExternalID != "" {
		errs = append(errs, notSupported(sp.Child("externalID"), ""))
	}
	for i, t := range k.Spec.Taints {
		// The cordon taint is derived from spec.unschedulable (Kubernetes'
		// node controller keeps it in step); kubectl uncordon patches only
		// unschedulable and sends the taint back as it was.
		if t.Key == TaintUnschedulable && t.Effect == corev1.TaintEffectNoSchedule && t.Value == "" {
			continue
		}
		errs = append(errs, notSupported(sp.Child("taints").Index(i), "taints other than "+TaintUnschedulable+":NoSchedule, which follows spec.unschedulable"))
	}
	// Status: read back what MiniKu stores, so a status write keeps it.
	for _, c := range k.Status.Conditions {
		switch string(c.Type) {
		case string(corev1.NodeReady):
			switch c.Status {
			case corev1.ConditionTrue:
				n.Status = schemas.NodeReady
			case corev1.ConditionFalse, corev1.ConditionUnknown:
				n.Status = schemas.NodeNotReady
			}
			n.LastHeartbeat = c.LastHeartbeatTime.UTC()
			if c.LastHeartbeatTime.IsZero() {
				n.LastHeartbeat = time.Time{}
			}
			if c.Reason != "KubeletReady" && c.Reason != "NodeStatusUnknown" && c.Reason != "NodeStatusNeverUpdated" {
				n.Reason = c.Reason
			}
		default:
			if slices.ContainsFunc(nodePressure, func(p struct{ typ, reason, message string }) bool {
				return p.typ == string(c.Type) && c.Status == corev1.ConditionFalse && c.Reason == p.reason && c.Message == p.message
			}) {
				continue // the default ToKube shows
			}
			n.Conditions = append(n.Conditions, schemas.NodeCondition{Type: string(c.Type), Status: string(c.Status),
				Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime.UTC()})
			if c.LastTransitionTime.IsZero() {
				n.Conditions[len(n.Conditions)-1].LastTransitionTime = time.Time{}
			}
		}
	}
	for name, q := range k.Status.Capacity {
		switch name {
		case corev1.ResourceCPU:
			n.Capacity.CPU = quantityString(q, true)
		case corev1.ResourceMemory:
			n.Capacity.Memory = quantityString(q, false)
		case corev1.ResourceEphemeralStorage:
			n.Capacity.EphemeralStorage = quantityString(q, false)
		case corev1.ResourcePods:
			n.Capacity.Pods = int(q.Value())
		default:
			errs = append(errs, notSupported(statusPath.Child("capacity").Key(string(name)), "MiniKu tracks cpu, memory, ephemeral-storage and pods"))
		}
	}
	return n, errs
}

func nodeRow(n *corev1.Node) []any {
	// Only the Ready condition shows, as kube-apiserver prints it:
	// pressure is for describe.
	var status []string
	for _, c := range n.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			status = append(status, string(c.Type))
		} else {
			status = append(status, "Not"+string(c.Type))
		}
	}
	if len(status) == 0 {
		status = []string{"Unknown"}
	}
	if n.Spec.Unschedulable {
		status = append(status, "SchedulingDisabled")
	}
	var roles []string
	for k, v := range n.Labels {
		switch {
		case strings.HasPrefix(k, labelNodeRolePrefix) && len(k) > len(labelNodeRolePrefix):
			roles = append(roles, k[len(labelNodeRolePrefix):])
		case k == "kubernetes.io/role" && v != "":
			roles = append(roles, v)
		}
	}
	slices.Sort(roles)
	rolesS := "<none>"
	if len(roles) > 0 {
		rolesS = strings.Join(roles, ",")
	}
	addr := func(t corev1.NodeAddressType) string {
		for _, a := range n.Status.Addresses {
			if a.Type == t {
				return a.Address
			}
		}
		return "<none>"
	}
	orUnknown := func(s string) string {
		if s == "" {
			return "<unknown>"
		}
		return s
	}
	info := n.Status.NodeInfo
	return []any{n.Name, strings.Join(status, ","), rolesS, age(n.CreationTimestamp), info.KubeletVersion,
		addr(corev1.NodeInternalIP), addr(corev1.NodeExternalIP), orUnknown(info.OSImage), orUnknown(info.KernelVersion), info.ContainerRuntimeVersion}
}

package kinds

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/schemas"
)

// containerIDPrefix marks MiniKu's runtime in containerID, as
// containerd:// does.
const containerIDPrefix = "miniku://"

// Pod is the declaration of v1 Pod.
var Pod = &Def[*schemas.Pod, *corev1.Pod]{
	Meta: Info{
		Kind: "Pod", ListKind: "PodList", GroupVersion: schema.GroupVersion{Version: "v1"},
		Resource: "pods", Singular: "pod", ShortNames: []string{"po"}, Categories: []string{"all"}, Namespaced: true,
		Verbs: allVerbs, Subresources: []string{"binding", "eviction", "exec", "log", "status"}, Bucket: schemas.BucketPods,
	},
	New:         func() *schemas.Pod { return &schemas.Pod{} },
	NewK:        func() *corev1.Pod { return &corev1.Pod{} },
	NewList:     func() runtime.Object { return &corev1.PodList{} },
	To:          PodToKube,
	From:        PodFromKube,
	Create:      PreparePodForCreate,
	Update:      PreparePodForUpdate,
	Check:       ValidatePod,
	CheckUpdate: ValidatePodUpdate,
	Status:      PreparePodForStatusUpdate,
	CheckStatus: ValidatePodStatusUpdate,
	Columns: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Ready", Type: "string", Description: "The aggregate readiness state of this pod for accepting traffic."},
		{Name: "Status", Type: "string", Description: "The aggregate status of the containers in this pod."},
		{Name: "Restarts", Type: "string", Description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."},
		ageColumn,
		{Name: "IP", Type: "string", Priority: 1, Description: corev1.PodStatus{}.SwaggerDoc()["podIP"]},
		{Name: "Node", Type: "string", Priority: 1, Description: corev1.PodSpec{}.SwaggerDoc()["nodeName"]},
		{Name: "Nominated Node", Type: "string", Priority: 1, Description: corev1.PodStatus{}.SwaggerDoc()["nominatedNodeName"]},
		{Name: "Readiness Gates", Type: "string", Priority: 1, Description: corev1.PodSpec{}.SwaggerDoc()["readinessGates"]},
	},
	Row: podRow,
}

// PreparePodForCreate resets what only MiniKu writes: identity, status,
// deletion. Every writer of a new pod (the API, the replicaset
// controller) runs it, then ValidatePod.
func PreparePodForCreate(p *schemas.Pod, now time.Time) {
	createMeta(&p.ObjectMeta, now)
	schemas.SetPodStatus(p, schemas.PodStatus{Status: schemas.PodPending})
}

// PreparePodForUpdate carries over from old what an update may not
// change: identity, status (the kubelet's) and deletion (a delete's).
func PreparePodForUpdate(p, old *schemas.Pod) {
	carryMeta(&p.ObjectMeta, &old.ObjectMeta)
	schemas.SetPodStatus(p, schemas.PodStatusOf(old))
	if p.NodeName == "" {
		p.NodeName = old.NodeName // binding sets it, an update cannot unset it
	}
	if sameSpec(&p.PodSpec, &old.PodSpec) {
		p.PodSpec = *old.PodSpec.DeepCopyPodSpec() // as stored, however the client spelled the defaults
	}
	if containerNameOf(p) == containerNameOf(old) {
		p.ContainerName = old.ContainerName
	}
	if !sameSpec(&p.PodSpec, &old.PodSpec) || containerNameOf(p) != containerNameOf(old) || p.NodeName != old.NodeName {
		bumpGeneration(&p.ObjectMeta) // ValidatePodUpdate refuses it; counted as Kubernetes does
	}
}

var podRename = mergeMaps(metaRename, specRename("", "spec"), map[string]string{
	"containerName": "spec.containers[0].name", "nodeName": "spec.nodeName",
	"owner": "metadata.ownerReferences[0].name", "status": "status.phase",
})

func mergeMaps(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// ValidatePod is the seed's Pod.Validate with Kubernetes paths, plus the
// metadata and ports it does not check.
func ValidatePod(p *schemas.Pod) field.ErrorList {
	errs := fieldErrors(p.Validate(), podRename)
	errs = append(errs, validateMeta(&p.ObjectMeta)...)
	return append(errs, validatePorts(p.Ports, specPath.Child("containers").Index(0).Child("ports"))...)
}

// ValidatePodUpdate refuses spec changes: a running pod's spec is fixed,
// as Kubernetes' mostly is (Kubernetes lets the image change; MiniKu's
// kubelet would not restart the container for it, so not yet).
func ValidatePodUpdate(p, old *schemas.Pod) field.ErrorList {
	errs := validateMetaUpdate(&p.ObjectMeta, &old.ObjectMeta)
	if !sameSpec(&p.PodSpec, &old.PodSpec) || containerNameOf(p) != containerNameOf(old) {
		errs = append(errs, field.Forbidden(specPath, "pod updates may not change the spec (MiniKu does not change a pod's container in place yet); delete and create the pod"))
	}
	if p.NodeName != old.NodeName {
		errs = append(errs, field.Invalid(specPath.Child("nodeName"), p.NodeName, "field is immutable: bind an unscheduled pod with pods/binding"))
	}
	return append(errs, ValidatePod(p)...)
}

// ContainerName is the name of the pod's one container on the Kubernetes
// API (pods/exec, pods/log take it).
func ContainerName(p *schemas.Pod) string { return containerNameOf(p) }

// containerNameOf is the pod's container name: the kubelet's default is
// the pod's name.
func containerNameOf(p *schemas.Pod) string {
	if p.ContainerName != "" {
		return p.ContainerName
	}
	return p.Name
}

// controllerRef is the ownerReference of a pod of replicaset name.
func controllerRef(name, uid string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name, UID: typesUID(uid),
		Controller: ptrTo(true), BlockOwnerDeletion: ptrTo(true)}
}

// PodToKube is p as Kubernetes shows a pod, status included.
func PodToKube(p *schemas.Pod) (*corev1.Pod, error) {
	meta, err := metaToKube(&p.ObjectMeta, true)
	if err != nil {
		return nil, err
	}
	meta.Generation = Generation(&p.ObjectMeta)
	if p.Owner != "" {
		meta.OwnerReferences = append([]metav1.OwnerReference{controllerRef(p.Owner, p.OwnerUID)}, meta.OwnerReferences...)
	}
	if p.DeletionTimestamp != nil && p.DeletionGracePeriodSeconds == nil {
		meta.DeletionGracePeriodSeconds = ptrTo(int64(p.GracePeriod().Seconds()))
	}
	cname := containerNameOf(p)
	spec, err := podSpecToKube(&p.PodSpec, cname, p.NodeName)
	if err != nil {
		return nil, fmt.Errorf("kinds: pod %s: %w", p.Name, err)
	}
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: meta,
		Spec:       spec,
		Status:     podStatusToKube(p, cname),
	}, nil
}

const (
	// reasonUnschedulable is the scheduler's reason on a pod it cannot
	// place (services/scheduler.ReasonPodUnschedulable), Kubernetes' too.
	reasonUnschedulable    = "Unschedulable"
	reasonContainerUnknown = "ContainerStatusUnknown"
)

// Container state reasons a pending container shows as waiting.
var waitingReasons = map[string]bool{
	"ContainerCreating": true, "CrashLoopBackOff": true, "ErrImagePull": true, "ImagePullBackOff": true,
	"CreateContainerError": true, "InvalidImageName": true, "StartError": true, "NoCommand": true,
}

func podStatusToKube(p *schemas.Pod, cname string) corev1.PodStatus {
	phase := p.Status
	if phase == "" {
		phase = schemas.PodPending
	}
	st := corev1.PodStatus{Phase: corev1.PodPhase(phase), QOSClass: qosClass(p.Resources)}
	created := kubeTime(p.CreatedAt)
	scheduled := p.NodeName != ""
	running := phase == schemas.PodRunning
	cond := func(t corev1.PodConditionType, ok bool, reason string, at metav1.Time) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, LastTransitionTime: at}
		if ok {
			c.Status = corev1.ConditionTrue
		} else {
			c.Reason = reason
		}
		return c
	}
	readyAt := created
	if p.StartedAt != nil {
		readyAt = metav1.NewTime(*p.StartedAt)
	}
	notReady := "ContainersNotReady"
	if phase.Terminal() {
		notReady = "PodCompleted"
	}
	sc := cond(corev1.PodScheduled, scheduled, "", created)
	if !scheduled && p.Reason == reasonUnschedulable {
		sc.Reason, sc.Message = p.Reason, p.Message // the scheduler's why
	}
	st.Conditions = []corev1.PodCondition{sc}
	if scheduled {
		st.Conditions = append(st.Conditions,
			cond(corev1.PodInitialized, true, "", created),
			cond(corev1.ContainersReady, running, notReady, readyAt),
			cond(corev1.PodReady, running, notReady, readyAt))
		// The kubelet has seen the pod: startTime is when it took it.
		st.StartTime = &created
		if p.StartedAt != nil {
			st.StartTime = &metav1.Time{Time: *p.StartedAt}
		}
	}
	if phase == schemas.PodFailed && (p.Reason == "Evicted" || p.Reason == "NodeLost") {
		st.Reason, st.Message = p.Reason, p.Message
	}
	if !scheduled {
		return st
	}
	cs := corev1.ContainerStatus{Name: cname, Image: p.Image, RestartCount: int32(p.RestartCount),
		Ready: running, Started: ptrTo(running)}
	if p.ContainerID != "" {
		cs.ContainerID = containerIDPrefix + p.ContainerID
	}
	var terminated *corev1.ContainerStateTerminated
	if p.ExitCode != nil {
		terminated = &corev1.ContainerStateTerminated{ExitCode: int32(*p.ExitCode), Reason: p.Reason, Message: p.Message,
			StartedAt: kubeTime(deref(p.StartedAt)), FinishedAt: kubeTime(deref(p.FinishedAt)), ContainerID: cs.ContainerID}
		if terminated.Reason == "" || waitingReasons[terminated.Reason] {
			terminated.Reason = "Error"
			if *p.ExitCode == 0 {
				terminated.Reason = "Completed"
			}
		}
	}
	switch {
	case running:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: kubeTime(deref(p.StartedAt))}
		if terminated != nil { // an earlier run, restarted in place
			cs.LastTerminationState.Terminated = terminated
		}
	case phase.Terminal() && terminated != nil:
		cs.State.Terminated = terminated
	case phase.Terminal():
		// No exit code known (the node was lost): what Kubernetes shows
		// for a container nobody could find.
		cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: reasonContainerUnknown,
			Message:   "The container could not be located when the pod was terminated",
			StartedAt: kubeTime(deref(p.StartedAt)), FinishedAt: kubeTime(deref(p.FinishedAt))}
	default:
		reason := p.Reason
		if !waitingReasons[reason] {
			reason = "ContainerCreating"
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: p.Message}
		if terminated != nil {
			cs.LastTerminationState.Terminated = terminated
		}
	}
	st.ContainerStatuses = []corev1.ContainerStatus{cs}
	return st
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// qosClass is the pod's Kubernetes QoS class: MiniKu's requests equal
// its limits, so cpu and memory both set is Guaranteed.
func qosClass(r schemas.ResourceList) corev1.PodQOSClass {
	switch {
	case r.CPU != "" && r.Memory != "":
		return corev1.PodQOSGuaranteed
	case r.CPU != "" || r.Memory != "" || r.EphemeralStorage != "":
		return corev1.PodQOSBurstable
	}
	return corev1.PodQOSBestEffort
}

// PodFromKube is the stored pod of a wire one; see the package's list of
// refused fields (podspec.go). Status is read back where MiniKu keeps it
// (phase, the container's state, restarts, ids, times); the strategies
// decide who may write it.
func PodFromKube(k *corev1.Pod) (*schemas.Pod, field.ErrorList) {
	meta, errs := metaFromKube(&k.ObjectMeta, true)
	p := &schemas.Pod{ObjectMeta: meta}
	// The controller reference to a replicaset is kept as owner/ownerUid.
	for i, r := range p.OwnerReferences {
		if r.Controller && r.Kind == "ReplicaSet" && r.APIVersion == "apps/v1" {
			p.Owner, p.OwnerUID = r.Name, r.UID
			if !r.BlockOwnerDeletion {
				errs = append(errs, field.NotSupported(metaPath.Child("ownerReferences").Index(i).Child("blockOwnerDeletion"), "false", []string{"true"}))
			}
			p.OwnerReferences = append(p.OwnerReferences[:i:i], p.OwnerReferences[i+1:]...)
			break
		}
	}
	if len(p.OwnerReferences) == 0 {
		p.OwnerReferences = nil
	}
	var serrs field.ErrorList
	p.PodSpec, p.ContainerName, p.NodeName, serrs = podSpecFromKube(&k.Spec, specPath)
	errs = append(errs, serrs...)
	if p.ContainerName == p.Name {
		p.ContainerName = ""
	}
	podStatusFromKube(&k.Status, p)
	return p, errs
}

func podStatusFromKube(st *corev1.PodStatus, p *schemas.Pod) {
	p.Status = schemas.PodPhase(st.Phase)
	if st.Reason != "" {
		p.Reason, p.Message = st.Reason, st.Message
	}
	for _, c := range st.Conditions {
		if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue && c.Reason == reasonUnschedulable {
			p.Reason, p.Message = c.Reason, c.Message
		}
	}
	if len(st.ContainerStatuses) == 0 {
		return
	}
	cs := st.ContainerStatuses[0]
	p.RestartCount = int(cs.RestartCount)
	p.ContainerID = strings.TrimPrefix(cs.ContainerID, containerIDPrefix)
	term := cs.State.Terminated
	if term == nil {
		term = cs.LastTerminationState.Terminated
	}
	if term != nil && term.Reason == reasonContainerUnknown {
		p.StartedAt, p.FinishedAt = timePtr(&term.StartedAt), timePtr(&term.FinishedAt)
		term = nil // shown for a missing exit code, not stored
	}
	if term != nil {
		code := int(term.ExitCode)
		p.ExitCode = &code
		p.StartedAt, p.FinishedAt = timePtr(&term.StartedAt), timePtr(&term.FinishedAt)
		if term.Reason != "Error" && term.Reason != "Completed" || cs.State.Terminated != nil && st.Reason == "" {
			p.Reason, p.Message = term.Reason, term.Message
		}
	}
	switch {
	case cs.State.Running != nil:
		p.StartedAt = timePtr(&cs.State.Running.StartedAt)
	case cs.State.Waiting != nil && cs.State.Waiting.Reason != "ContainerCreating":
		p.Reason, p.Message = cs.State.Waiting.Reason, cs.State.Waiting.Message
	}
}

// podRow is a pod's table row as kube-apiserver prints it.
func podRow(pod *corev1.Pod) []any {
	restarts, ready, total := 0, 0, len(pod.Spec.Containers)
	var lastRestart time.Time
	reason := string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		reason = pod.Status.Reason
	}
	for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
		c := pod.Status.ContainerStatuses[i]
		restarts += int(c.RestartCount)
		if t := c.LastTerminationState.Terminated; t != nil && t.FinishedAt.After(lastRestart) {
			lastRestart = t.FinishedAt.Time
		}
		switch {
		case c.State.Waiting != nil && c.State.Waiting.Reason != "":
			reason = c.State.Waiting.Reason
		case c.State.Terminated != nil && c.State.Terminated.Reason != "":
			reason = c.State.Terminated.Reason
		case c.State.Terminated != nil && c.State.Terminated.Signal != 0:
			reason = fmt.Sprintf("Signal:%d", c.State.Terminated.Signal)
		case c.State.Terminated != nil:
			reason = fmt.Sprintf("ExitCode:%d", c.State.Terminated.ExitCode)
		case c.Ready && c.State.Running != nil:
			ready++
		}
	}
	if pod.DeletionTimestamp != nil {
		reason = "Terminating"
		if pod.Status.Reason == "NodeLost" {
			reason = "Unknown"
		}
	}
	var restartsS any = fmt.Sprint(restarts)
	if restarts != 0 && !lastRestart.IsZero() {
		restartsS = Ago{Format: fmt.Sprintf("%d (%%s ago)", restarts), Times: []time.Time{lastRestart}}
	}
	node := orString(pod.Spec.NodeName, "<none>")
	ip := orString(pod.Status.PodIP, "<none>")
	nominated := orString(pod.Status.NominatedNodeName, "<none>")
	gates := "<none>"
	return []any{pod.Name, fmt.Sprintf("%d/%d", ready, total), reason, restartsS, age(pod.CreationTimestamp), ip, node, nominated, gates}
}

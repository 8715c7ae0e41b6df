package kinds

import (
	"maps"
	"reflect"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/schemas"
)

// ReplicaSet is the declaration of apps/v1 ReplicaSet.
var ReplicaSet = &Def[*schemas.ReplicaSet, *appsv1.ReplicaSet]{
	Meta: Info{
		Kind: "ReplicaSet", ListKind: "ReplicaSetList", GroupVersion: appsv1.SchemeGroupVersion,
		Resource: "replicasets", Singular: "replicaset", ShortNames: []string{"rs"}, Categories: []string{"all"}, Namespaced: true,
		Verbs: allVerbs, Subresources: []string{"scale", "status"}, Bucket: schemas.BucketReplicaSets,
	},
	New:         func() *schemas.ReplicaSet { return &schemas.ReplicaSet{} },
	NewK:        func() *appsv1.ReplicaSet { return &appsv1.ReplicaSet{} },
	NewList:     func() runtime.Object { return &appsv1.ReplicaSetList{} },
	To:          ReplicaSetToKube,
	From:        ReplicaSetFromKube,
	Create:      PrepareReplicaSetForCreate,
	Update:      PrepareReplicaSetForUpdate,
	Check:       ValidateReplicaSet,
	CheckUpdate: ValidateReplicaSetUpdate,
	Status:      prepareReplicaSetForStatusUpdate,
	CheckStatus: validateReplicaSetStatusUpdate,
	Columns: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Desired", Type: "integer", Description: appsv1.ReplicaSetSpec{}.SwaggerDoc()["replicas"]},
		{Name: "Current", Type: "integer", Description: appsv1.ReplicaSetStatus{}.SwaggerDoc()["replicas"]},
		{Name: "Ready", Type: "integer", Description: appsv1.ReplicaSetStatus{}.SwaggerDoc()["readyReplicas"]},
		ageColumn,
		{Name: "Containers", Type: "string", Priority: 1, Description: "Names of each container in the template."},
		{Name: "Images", Type: "string", Priority: 1, Description: "Images referenced by each container in the template."},
		{Name: "Selector", Type: "string", Priority: 1, Description: appsv1.ReplicaSetSpec{}.SwaggerDoc()["selector"]},
	},
	Row: func(rs *appsv1.ReplicaSet) []any {
		var names, images []string
		for _, c := range rs.Spec.Template.Spec.Containers {
			names, images = append(names, c.Name), append(images, c.Image)
		}
		desired := int64(1)
		if rs.Spec.Replicas != nil {
			desired = int64(*rs.Spec.Replicas)
		}
		return []any{rs.Name, desired, int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas), age(rs.CreationTimestamp),
			strings.Join(names, ","), strings.Join(images, ","), metav1.FormatLabelSelector(rs.Spec.Selector)}
	},
}

// PrepareReplicaSetForCreate resets identity and status (only the
// controller counts pods).
func PrepareReplicaSetForCreate(rs *schemas.ReplicaSet, now time.Time) {
	createMeta(&rs.ObjectMeta, now)
	rs.CurrentCount, rs.ReadyCount = 0, 0
}

// PrepareReplicaSetForUpdate carries identity and status over from old
// and bumps the generation when the spec changed.
func PrepareReplicaSetForUpdate(rs, old *schemas.ReplicaSet) {
	carryMeta(&rs.ObjectMeta, &old.ObjectMeta)
	rs.CurrentCount, rs.ReadyCount = old.CurrentCount, old.ReadyCount
	if sameSpec(&rs.Template.PodSpec, &old.Template.PodSpec) {
		rs.Template.PodSpec = *old.Template.PodSpec.DeepCopyPodSpec() // as stored, however the client spelled the defaults
	}
	if templateContainerName(rs) == templateContainerName(old) {
		rs.Template.Name = old.Template.Name
	}
	if maps.Equal(rs.PodLabels(), old.PodLabels()) {
		rs.Template.Labels = maps.Clone(old.Template.Labels)
	}
	if rs.DesiredCount != old.DesiredCount || !maps.Equal(rs.Selector, old.Selector) || !reflect.DeepEqual(rs.Template, old.Template) {
		bumpGeneration(&rs.ObjectMeta)
	}
}

var rsRename = mergeMaps(metaRename, specRename("template.", "spec.template.spec"), map[string]string{
	"selector": "spec.selector.matchLabels", "template.labels": "spec.template.metadata.labels",
	"template.name": "spec.template.spec.containers[0].name", "desiredCount": "spec.replicas",
})

// ValidateReplicaSet is the seed's ReplicaSet.Validate with Kubernetes
// paths, plus metadata and ports.
func ValidateReplicaSet(rs *schemas.ReplicaSet) field.ErrorList {
	errs := fieldErrors(rs.Validate(), rsRename)
	errs = append(errs, validateMeta(&rs.ObjectMeta)...)
	errs = append(errs, apivalidation.ValidateAnnotations(rs.Template.Annotations, field.NewPath("spec", "template", "metadata", "annotations"))...)
	return append(errs, validatePorts(rs.Template.Ports, field.NewPath("spec", "template", "spec", "containers").Index(0).Child("ports"))...)
}

// selectorImmutable says why a selector may not change.
const selectorImmutable = "field is immutable: a replicaset's selector decides which pods it owns"

// ValidateReplicaSetUpdate also refuses a changed selector, as apps/v1
// does.
func ValidateReplicaSetUpdate(rs, old *schemas.ReplicaSet) field.ErrorList {
	errs := validateMetaUpdate(&rs.ObjectMeta, &old.ObjectMeta)
	if !maps.Equal(rs.Selector, old.Selector) {
		errs = append(errs, field.Invalid(specPath.Child("selector"), metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: rs.Selector}), selectorImmutable))
	}
	return append(errs, ValidateReplicaSet(rs)...)
}

func templateContainerName(rs *schemas.ReplicaSet) string {
	if rs.Template.Name != "" {
		return rs.Template.Name
	}
	return rs.Name
}

// ReplicaSetToKube is rs as Kubernetes shows a replicaset.
func ReplicaSetToKube(rs *schemas.ReplicaSet) (*appsv1.ReplicaSet, error) {
	meta, err := metaToKube(&rs.ObjectMeta, true)
	if err != nil {
		return nil, err
	}
	meta.Generation = Generation(&rs.ObjectMeta)
	spec, err := podSpecToKube(&rs.Template.PodSpec, templateContainerName(rs), "")
	if err != nil {
		return nil, err
	}
	replicas := int32(rs.DesiredCount)
	return &appsv1.ReplicaSet{
		TypeMeta:   metav1.TypeMeta{Kind: "ReplicaSet", APIVersion: "apps/v1"},
		ObjectMeta: meta,
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: maps.Clone(rs.Selector)},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: rs.PodLabels(), Annotations: maps.Clone(rs.Template.Annotations)}, Spec: spec},
		},
		Status: appsv1.ReplicaSetStatus{
			Replicas: int32(rs.CurrentCount), FullyLabeledReplicas: int32(rs.CurrentCount),
			ReadyReplicas: int32(rs.ReadyCount), AvailableReplicas: int32(rs.ReadyCount),
			// The controller reconciles every spec it sees (level-triggered)
			// but records no generation yet: report the current one.
			ObservedGeneration: meta.Generation,
		},
	}, nil
}

// ReplicaSetFromKube is the stored replicaset of a wire one. Refused
// besides the pod spec fields (podspec.go): spec.minReadySeconds,
// spec.selector.matchExpressions, spec.template.metadata other than
// labels and annotations, spec.template.spec.nodeName.
func ReplicaSetFromKube(k *appsv1.ReplicaSet) (*schemas.ReplicaSet, field.ErrorList) {
	meta, errs := metaFromKube(&k.ObjectMeta, true)
	rs := &schemas.ReplicaSet{ObjectMeta: meta, DesiredCount: 1}
	if k.Spec.Replicas != nil {
		rs.DesiredCount = int(*k.Spec.Replicas)
	}
	if k.Spec.MinReadySeconds != 0 {
		errs = append(errs, notSupported(specPath.Child("minReadySeconds"), "a running pod counts as available at once"))
	}
	sel := specPath.Child("selector")
	if k.Spec.Selector == nil {
		errs = append(errs, field.Required(sel, ""))
	} else {
		rs.Selector = maps.Clone(k.Spec.Selector.MatchLabels)
		if len(k.Spec.Selector.MatchExpressions) > 0 {
			errs = append(errs, notSupported(sel.Child("matchExpressions"), "use matchLabels"))
		}
	}
	tp := specPath.Child("template")
	tm := k.Spec.Template.ObjectMeta
	rs.Template.Labels = maps.Clone(tm.Labels)
	if maps.Equal(rs.Template.Labels, rs.Selector) {
		rs.Template.Labels = nil // the stored default: pods get the selector
	}
	rs.Template.Annotations = maps.Clone(tm.Annotations)
	tm.Labels, tm.Annotations = nil, nil
	tm.CreationTimestamp = metav1.Time{} // written as null by older clients
	errs = append(errs, leftovers(reflect.ValueOf(&tm).Elem(), tp.Child("metadata"))...)
	var (
		serrs field.ErrorList
		node  string
	)
	rs.Template.PodSpec, rs.Template.Name, node, serrs = podSpecFromKube(&k.Spec.Template.Spec, tp.Child("spec"))
	errs = append(errs, serrs...)
	if node != "" {
		errs = append(errs, notSupported(tp.Child("spec", "nodeName"), "use nodeSelector with kubernetes.io/hostname"))
	}
	if rs.Template.Name == rs.Name {
		rs.Template.Name = ""
	}
	rs.CurrentCount, rs.ReadyCount = int(k.Status.Replicas), int(k.Status.ReadyReplicas)
	return rs, errs
}

// ReplicaSetScale is rs's scale subresource.
func ReplicaSetScale(rs *schemas.ReplicaSet) *autoscalingv1.Scale {
	return &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: rs.Name, Namespace: DefaultNamespace, UID: types.UID(rs.UID),
			ResourceVersion: metaRV(rs.ResourceVersion), CreationTimestamp: kubeTime(rs.CreatedAt)},
		Spec:   autoscalingv1.ScaleSpec{Replicas: int32(rs.DesiredCount)},
		Status: autoscalingv1.ScaleStatus{Replicas: int32(rs.CurrentCount), Selector: metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: rs.Selector})},
	}
}

// SetReplicaSetScale applies a scale write to rs: only spec.replicas.
func SetReplicaSetScale(rs *schemas.ReplicaSet, s *autoscalingv1.Scale) field.ErrorList {
	if s.Spec.Replicas < 0 {
		return field.ErrorList{field.Invalid(specPath.Child("replicas"), s.Spec.Replicas, "must be greater than or equal to 0")}
	}
	rs.DesiredCount = int(s.Spec.Replicas)
	return nil
}

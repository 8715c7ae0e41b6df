package kinds

import (
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/schemas"
)

// Namespace is the declaration of v1 Namespace.
var Namespace = &Def[*schemas.Namespace, *corev1.Namespace]{
	Meta: Info{
		Kind: "Namespace", ListKind: "NamespaceList", GroupVersion: schema.GroupVersion{Version: "v1"},
		Resource: "namespaces", Singular: "namespace", ShortNames: []string{"ns"},
		Verbs:        []string{"create", "delete", "get", "list", "patch", "update", "watch"},
		Subresources: []string{"finalize", "status"}, Bucket: schemas.BucketNamespaces,
	},
	New:     func() *schemas.Namespace { return &schemas.Namespace{} },
	NewK:    func() *corev1.Namespace { return &corev1.Namespace{} },
	NewList: func() runtime.Object { return &corev1.NamespaceList{} },
	To:      NamespaceToKube,
	From:    NamespaceFromKube,
	Create: func(ns *schemas.Namespace, now time.Time) {
		createMeta(&ns.ObjectMeta, now)
		ns.Phase = schemas.NamespaceActive
	},
	Update: func(ns, old *schemas.Namespace) {
		carryMeta(&ns.ObjectMeta, &old.ObjectMeta)
		ns.Phase = old.Phase // only a delete makes it Terminating
	},
	Check: validateNamespace,
	CheckUpdate: func(ns, old *schemas.Namespace) field.ErrorList {
		return append(validateMetaUpdate(&ns.ObjectMeta, &old.ObjectMeta), validateNamespace(ns)...)
	},
	Columns: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Status", Type: "string", Description: "The status of the namespace"},
		ageColumn,
	},
	Row: func(ns *corev1.Namespace) []any {
		return []any{ns.Name, string(ns.Status.Phase), age(ns.CreationTimestamp)}
	},
}

func validateNamespace(ns *schemas.Namespace) field.ErrorList {
	errs := fieldErrors(schemas.ValidateName("name", ns.Name, schemas.MaxNameLength), metaRename)
	errs = append(errs, fieldErrors(schemas.ValidateLabels("labels", ns.Labels), metaRename)...)
	switch ns.Phase {
	case "", schemas.NamespaceActive, schemas.NamespaceTerminating:
	default:
		errs = append(errs, field.NotSupported(statusPath.Child("phase"), ns.Phase, []schemas.NamespacePhase{schemas.NamespaceActive, schemas.NamespaceTerminating}))
	}
	return append(errs, validateMeta(&ns.ObjectMeta)...)
}

// NamespaceToKube is ns as Kubernetes shows a namespace: with the
// kubernetes.io/metadata.name label and the kubernetes finalizer that
// kube-apiserver always adds.
func NamespaceToKube(ns *schemas.Namespace) (*corev1.Namespace, error) {
	meta, err := metaToKube(&ns.ObjectMeta, false)
	if err != nil {
		return nil, err
	}
	if meta.Labels == nil {
		meta.Labels = map[string]string{}
	}
	meta.Labels[labelNamespaceName] = ns.Name
	phase := ns.Phase
	if phase == "" {
		phase = schemas.NamespaceActive
	}
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"},
		ObjectMeta: meta,
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{namespaceFinalizer}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespacePhase(phase)},
	}, nil
}

// NamespaceFromKube is the stored namespace of a wire one. Refused:
// spec.finalizers other than kubernetes, status.conditions.
func NamespaceFromKube(k *corev1.Namespace) (*schemas.Namespace, field.ErrorList) {
	meta, errs := metaFromKube(&k.ObjectMeta, false)
	ns := &schemas.Namespace{ObjectMeta: meta, Phase: schemas.NamespacePhase(k.Status.Phase)}
	// The label kube-apiserver sets is derived from the name: not stored.
	if v, ok := ns.Labels[labelNamespaceName]; ok {
		if v != k.Name && k.Name != "" {
			errs = append(errs, field.Invalid(metaPath.Child("labels").Key(labelNamespaceName), v, "must be the namespace's name"))
		}
		ns.Labels = maps.Clone(ns.Labels)
		delete(ns.Labels, labelNamespaceName)
		if len(ns.Labels) == 0 {
			ns.Labels = nil
		}
	}
	for i, f := range k.Spec.Finalizers {
		if f != namespaceFinalizer {
			errs = append(errs, notSupported(specPath.Child("finalizers").Index(i), "only the kubernetes finalizer"))
		}
	}
	if len(k.Status.Conditions) > 0 {
		errs = append(errs, notSupported(statusPath.Child("conditions"), ""))
	}
	return ns, errs
}

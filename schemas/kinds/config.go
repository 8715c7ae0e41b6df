package kinds

import (
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/schemas"
)

func init() {
	Register(ConfigMap)
	Register(Secret)
	Register(ServiceAccount)
}

var coreV1 = schema.GroupVersion{Version: "v1"}

// ConfigMap is the declaration of v1 ConfigMap.
var ConfigMap = &Def[*schemas.ConfigMap, *corev1.ConfigMap]{
	Meta: Info{
		Kind: "ConfigMap", ListKind: "ConfigMapList", GroupVersion: coreV1,
		Resource: "configmaps", Singular: "configmap", ShortNames: []string{"cm"}, Namespaced: true,
		Verbs: allVerbs, Bucket: schemas.BucketConfigMaps,
	},
	New:     func() *schemas.ConfigMap { return &schemas.ConfigMap{} },
	NewK:    func() *corev1.ConfigMap { return &corev1.ConfigMap{} },
	NewList: func() runtime.Object { return &corev1.ConfigMapList{} },
	To:      ConfigMapToKube,
	From:    ConfigMapFromKube,
	Create:  func(c *schemas.ConfigMap, now time.Time) { createMeta(&c.ObjectMeta, now) },
	Update:  func(c, old *schemas.ConfigMap) { carryMeta(&c.ObjectMeta, &old.ObjectMeta) },
	Check: func(c *schemas.ConfigMap) field.ErrorList {
		return append(c.Validate(), validateMeta(&c.ObjectMeta)...)
	},
	CheckUpdate: func(c, old *schemas.ConfigMap) field.ErrorList {
		errs := validateMetaUpdate(&c.ObjectMeta, &old.ObjectMeta)
		return append(append(errs, c.ValidateUpdate(old)...), validateMeta(&c.ObjectMeta)...)
	},
	// kube-apiserver's printers: DATA counts data and binaryData keys.
	Columns: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Data", Type: "string", Description: corev1.ConfigMap{}.SwaggerDoc()["data"]},
		ageColumn,
	},
	Row: func(c *corev1.ConfigMap) []any {
		return []any{c.Name, int64(len(c.Data) + len(c.BinaryData)), age(c.CreationTimestamp)}
	},
}

// Secret is the declaration of v1 Secret.
var Secret = &Def[*schemas.Secret, *corev1.Secret]{
	Meta: Info{
		Kind: "Secret", ListKind: "SecretList", GroupVersion: coreV1,
		Resource: "secrets", Singular: "secret", Namespaced: true,
		Verbs: allVerbs, Bucket: schemas.BucketSecrets,
	},
	New:     func() *schemas.Secret { return &schemas.Secret{} },
	NewK:    func() *corev1.Secret { return &corev1.Secret{} },
	NewList: func() runtime.Object { return &corev1.SecretList{} },
	To:      SecretToKube,
	From:    SecretFromKube,
	Create: func(s *schemas.Secret, now time.Time) {
		createMeta(&s.ObjectMeta, now)
		defaultSecretType(s)
	},
	Update: func(s, old *schemas.Secret) {
		carryMeta(&s.ObjectMeta, &old.ObjectMeta)
		defaultSecretType(s)
	},
	Check: func(s *schemas.Secret) field.ErrorList {
		return append(s.Validate(), validateMeta(&s.ObjectMeta)...)
	},
	CheckUpdate: func(s, old *schemas.Secret) field.ErrorList {
		errs := validateMetaUpdate(&s.ObjectMeta, &old.ObjectMeta)
		return append(append(errs, s.ValidateUpdate(old)...), validateMeta(&s.ObjectMeta)...)
	},
	Columns: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Type", Type: "string", Description: corev1.Secret{}.SwaggerDoc()["type"]},
		{Name: "Data", Type: "string", Description: corev1.Secret{}.SwaggerDoc()["data"]},
		ageColumn,
	},
	Row: func(s *corev1.Secret) []any {
		return []any{s.Name, string(s.Type), int64(len(s.Data)), age(s.CreationTimestamp)}
	},
}

// ServiceAccount is the declaration of v1 ServiceAccount.
var ServiceAccount = &Def[*schemas.ServiceAccount, *corev1.ServiceAccount]{
	Meta: Info{
		Kind: "ServiceAccount", ListKind: "ServiceAccountList", GroupVersion: coreV1,
		Resource: "serviceaccounts", Singular: "serviceaccount", ShortNames: []string{"sa"}, Namespaced: true,
		Verbs: allVerbs, Bucket: schemas.BucketServiceAccounts,
	},
	New:     func() *schemas.ServiceAccount { return &schemas.ServiceAccount{} },
	NewK:    func() *corev1.ServiceAccount { return &corev1.ServiceAccount{} },
	NewList: func() runtime.Object { return &corev1.ServiceAccountList{} },
	To:      ServiceAccountToKube,
	From:    ServiceAccountFromKube,
	Create:  func(a *schemas.ServiceAccount, now time.Time) { createMeta(&a.ObjectMeta, now) },
	Update:  func(a, old *schemas.ServiceAccount) { carryMeta(&a.ObjectMeta, &old.ObjectMeta) },
	Check: func(a *schemas.ServiceAccount) field.ErrorList {
		return append(a.Validate(), validateMeta(&a.ObjectMeta)...)
	},
	CheckUpdate: func(a, old *schemas.ServiceAccount) field.ErrorList {
		errs := validateMetaUpdate(&a.ObjectMeta, &old.ObjectMeta)
		return append(append(errs, a.Validate()...), validateMeta(&a.ObjectMeta)...)
	},
	Columns: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Secrets", Type: "string", Description: corev1.ServiceAccount{}.SwaggerDoc()["secrets"]},
		ageColumn,
	},
	Row: func(a *corev1.ServiceAccount) []any {
		return []any{a.Name, int64(len(a.Secrets)), age(a.CreationTimestamp)}
	},
}

// NewDefaultServiceAccount is the "default" ServiceAccount every
// namespace gets, prepared for create as any writer's would be.
func NewDefaultServiceAccount(now time.Time) *schemas.ServiceAccount {
	a := &schemas.ServiceAccount{ObjectMeta: schemas.ObjectMeta{Name: schemas.DefaultServiceAccount}}
	ServiceAccount.Create(a, now)
	return a
}

// defaultSecretType is Kubernetes' SetDefaults_Secret.
func defaultSecretType(s *schemas.Secret) {
	if s.Type == "" {
		s.Type = schemas.SecretTypeOpaque
	}
}

// ConfigMapToKube is c as Kubernetes shows it.
func ConfigMapToKube(c *schemas.ConfigMap) (*corev1.ConfigMap, error) {
	meta, err := metaToKube(&c.ObjectMeta, true)
	if err != nil {
		return nil, err
	}
	k := c.DeepCopy() // the wire object must not share the cache's maps
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
		ObjectMeta: meta,
		Data:       k.Data, BinaryData: k.BinaryData, Immutable: k.Immutable,
	}, nil
}

// ConfigMapFromKube is the stored ConfigMap of a wire one; every wire
// field is kept.
func ConfigMapFromKube(k *corev1.ConfigMap) (*schemas.ConfigMap, field.ErrorList) {
	meta, errs := metaFromKube(&k.ObjectMeta, true)
	c := &schemas.ConfigMap{ObjectMeta: meta, Data: k.Data, BinaryData: k.BinaryData, Immutable: k.Immutable}
	return c.DeepCopy(), errs
}

// SecretToKube is s as Kubernetes shows it: data (base64 on the wire, as
// []byte encodes in JSON), never stringData, which is write-only.
func SecretToKube(s *schemas.Secret) (*corev1.Secret, error) {
	meta, err := metaToKube(&s.ObjectMeta, true)
	if err != nil {
		return nil, err
	}
	c := s.DeepCopy()
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{Kind: "Secret", APIVersion: "v1"},
		ObjectMeta: meta,
		Type:       corev1.SecretType(c.Type), Data: c.Data, Immutable: c.Immutable,
	}, nil
}

// SecretFromKube is the stored Secret of a wire one. stringData is folded
// into data, its keys winning, as Kubernetes' conversion does on every
// write; an empty type becomes Opaque, as its defaulting does.
func SecretFromKube(k *corev1.Secret) (*schemas.Secret, field.ErrorList) {
	meta, errs := metaFromKube(&k.ObjectMeta, true)
	s := &schemas.Secret{ObjectMeta: meta, Type: string(k.Type), Data: k.Data, Immutable: k.Immutable}
	s = s.DeepCopy()
	if len(k.StringData) > 0 && s.Data == nil {
		s.Data = make(map[string][]byte, len(k.StringData))
	}
	for _, key := range slices.Sorted(maps.Keys(k.StringData)) {
		s.Data[key] = []byte(k.StringData[key])
	}
	defaultSecretType(s)
	return s, errs
}

// ServiceAccountToKube is a as Kubernetes shows it.
func ServiceAccountToKube(a *schemas.ServiceAccount) (*corev1.ServiceAccount, error) {
	meta, err := metaToKube(&a.ObjectMeta, true)
	if err != nil {
		return nil, err
	}
	k := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{Kind: "ServiceAccount", APIVersion: "v1"},
		ObjectMeta: meta,
	}
	for _, n := range a.Secrets {
		k.Secrets = append(k.Secrets, corev1.ObjectReference{Name: n})
	}
	for _, n := range a.ImagePullSecrets {
		k.ImagePullSecrets = append(k.ImagePullSecrets, corev1.LocalObjectReference{Name: n})
	}
	if a.AutomountServiceAccountToken != nil {
		k.AutomountServiceAccountToken = ptrTo(*a.AutomountServiceAccountToken)
	}
	return k, nil
}

// ServiceAccountFromKube is the stored ServiceAccount of a wire one.
// secrets[i] keeps only a name: a reference naming another namespace,
// kind, uid or field is refused.
func ServiceAccountFromKube(k *corev1.ServiceAccount) (*schemas.ServiceAccount, field.ErrorList) {
	meta, errs := metaFromKube(&k.ObjectMeta, true)
	a := &schemas.ServiceAccount{ObjectMeta: meta}
	for i, r := range k.Secrets {
		p := field.NewPath("secrets").Index(i)
		rest := r
		rest.Name = ""
		if rest.Namespace == DefaultNamespace {
			rest.Namespace = "" // its own namespace, said explicitly
		}
		if rest != (corev1.ObjectReference{}) {
			errs = append(errs, notSupported(p, "a secret reference is a name only"))
		}
		a.Secrets = append(a.Secrets, r.Name)
	}
	for _, r := range k.ImagePullSecrets {
		a.ImagePullSecrets = append(a.ImagePullSecrets, r.Name)
	}
	if k.AutomountServiceAccountToken != nil {
		a.AutomountServiceAccountToken = ptrTo(*k.AutomountServiceAccountToken)
	}
	return a, errs
}

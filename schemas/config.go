package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ConfigMap is core/v1 ConfigMap as stored: configuration a pod will read
// (consuming it in pods comes later).
type ConfigMap struct {
	ObjectMeta
	Data       map[string]string `json:"data,omitempty"`
	BinaryData map[string][]byte `json:"binaryData,omitempty"`
	// Immutable, once true, freezes Data and BinaryData and itself.
	Immutable *bool `json:"immutable,omitempty"`
}

// Secret is core/v1 Secret as stored. The wire's stringData is folded
// into Data on every write (as Kubernetes' conversion does), so it is
// never stored. The whole value is encrypted at rest (bus/encrypt).
type Secret struct {
	ObjectMeta
	// Type is "Opaque" unless the writer says otherwise; it never changes.
	Type      string            `json:"type,omitempty"`
	Data      map[string][]byte `json:"data,omitempty"`
	Immutable *bool             `json:"immutable,omitempty"`
}

// ServiceAccount is core/v1 ServiceAccount as stored. MiniKu issues no
// tokens yet; the fields are kept so that objects written by Kubernetes
// tools (which set them) round-trip.
type ServiceAccount struct {
	ObjectMeta
	// Secrets and ImagePullSecrets are names of Secrets in the service
	// account's namespace; the wire's other ObjectReference fields are
	// refused by the declaration.
	Secrets                      []string `json:"secrets,omitempty"`
	ImagePullSecrets             []string `json:"imagePullSecrets,omitempty"`
	AutomountServiceAccountToken *bool    `json:"automountServiceAccountToken,omitempty"`
}

// String shows a Secret without its data: a %v in a log line or a test
// failure must not print what the bucket encrypts.
func (s Secret) String() string {
	return fmt.Sprintf("Secret{%s type=%q keys=%q (values redacted)}", s.Name, s.Type, slices.Sorted(maps.Keys(s.Data)))
}

// LogValue is String for log/slog.
func (s Secret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", s.Name), slog.String("type", s.Type), slog.Int("keys", len(s.Data)))
}

// Secret types Kubernetes checks the data of (k8s.io/api/core/v1).
const (
	SecretTypeOpaque              = "Opaque"
	SecretTypeServiceAccountToken = "kubernetes.io/service-account-token"
	SecretTypeDockercfg           = "kubernetes.io/dockercfg"
	SecretTypeDockerConfigJSON    = "kubernetes.io/dockerconfigjson"
	SecretTypeBasicAuth           = "kubernetes.io/basic-auth"
	SecretTypeSSHAuth             = "kubernetes.io/ssh-auth"
	SecretTypeTLS                 = "kubernetes.io/tls"
)

// MaxConfigSize bounds the data of a ConfigMap or Secret, as Kubernetes'
// MaxSecretSize does (1 MiB).
const MaxConfigSize = 1 << 20

// DefaultServiceAccount is the service account every namespace has and
// pods run as when they name none.
const DefaultServiceAccount = "default"

// ValidateObjectName checks a DNS-1123 subdomain (at most 253 characters,
// dots allowed), the name rule of ConfigMaps, Secrets and ServiceAccounts
// in Kubernetes: Helm names its release Secrets sh.helm.release.v1.<name>.v<n>.
func ValidateObjectName(p *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "name or generateName is required")}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	return errs
}

var namePath = field.NewPath("metadata", "name")

// Validate checks the ConfigMap as Kubernetes' ValidateConfigMap does:
// keys of [-._a-zA-Z0-9]+, none in both data and binaryData, at most
// MaxConfigSize of values in all.
func (c *ConfigMap) Validate() field.ErrorList {
	errs := ValidateObjectName(namePath, c.Name)
	errs = append(errs, validateLabels(c.Labels)...)
	size := 0
	dataPath, binPath := field.NewPath("data"), field.NewPath("binaryData")
	for _, k := range slices.Sorted(maps.Keys(c.Data)) {
		errs = append(errs, validateKey(dataPath.Key(k), k)...)
		if _, dup := c.BinaryData[k]; dup {
			errs = append(errs, field.Invalid(dataPath.Key(k), k, "duplicate of key present in binaryData"))
		}
		size += len(c.Data[k])
	}
	for _, k := range slices.Sorted(maps.Keys(c.BinaryData)) {
		errs = append(errs, validateKey(binPath.Key(k), k)...)
		size += len(c.BinaryData[k])
	}
	if size > MaxConfigSize {
		errs = append(errs, field.TooLong(field.NewPath(""), "", MaxConfigSize))
	}
	return errs
}

// ValidateUpdate also refuses changes to an immutable ConfigMap.
func (c *ConfigMap) ValidateUpdate(old *ConfigMap) field.ErrorList {
	var errs field.ErrorList
	if isTrue(old.Immutable) {
		if !isTrue(c.Immutable) {
			errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
		}
		if !equalStrings(c.Data, old.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
		}
		if !equalBytes(c.BinaryData, old.BinaryData) {
			errs = append(errs, field.Forbidden(field.NewPath("binaryData"), "field is immutable when `immutable` is set"))
		}
	}
	return append(errs, c.Validate()...)
}

// Validate checks the Secret as Kubernetes' ValidateSecret does: keys,
// total size, and the keys its type requires.
func (s *Secret) Validate() field.ErrorList {
	errs := ValidateObjectName(namePath, s.Name)
	errs = append(errs, validateLabels(s.Labels)...)
	dataPath := field.NewPath("data")
	size := 0
	for _, k := range slices.Sorted(maps.Keys(s.Data)) {
		errs = append(errs, validateKey(dataPath.Key(k), k)...)
		size += len(s.Data[k])
	}
	if size > MaxConfigSize {
		errs = append(errs, field.TooLong(dataPath, "", MaxConfigSize))
	}
	required := func(keys ...string) {
		for _, k := range keys {
			if _, ok := s.Data[k]; !ok {
				errs = append(errs, field.Required(dataPath.Key(k), ""))
			}
		}
	}
	wellFormedJSON := func(k string) {
		v, ok := s.Data[k]
		if !ok {
			required(k)
			return
		}
		if err := json.Unmarshal(v, &map[string]any{}); err != nil {
			// Never echo a secret's contents into an error.
			errs = append(errs, field.Invalid(dataPath.Key(k), "<secret contents redacted>", err.Error()))
		}
	}
	switch s.Type {
	case "", SecretTypeOpaque:
	case SecretTypeServiceAccountToken:
		errs = append(errs, field.NotSupported(field.NewPath("type"), s.Type, []string{SecretTypeOpaque, SecretTypeDockercfg, SecretTypeDockerConfigJSON, SecretTypeBasicAuth, SecretTypeSSHAuth, SecretTypeTLS, "<any other type>"}))
	case SecretTypeDockercfg:
		wellFormedJSON(".dockercfg")
	case SecretTypeDockerConfigJSON:
		wellFormedJSON(".dockerconfigjson")
	case SecretTypeBasicAuth:
		_, u := s.Data["username"]
		_, p := s.Data["password"]
		if !u && !p {
			required("username", "password")
		}
	case SecretTypeSSHAuth:
		if len(s.Data["ssh-privatekey"]) == 0 {
			errs = append(errs, field.Required(dataPath.Key("ssh-privatekey"), ""))
		}
	case SecretTypeTLS:
		required("tls.crt", "tls.key")
	default:
		// Other types (helm.sh/release.v1, …) are the writer's business.
		for _, msg := range validation.IsQualifiedName(s.Type) {
			errs = append(errs, field.Invalid(field.NewPath("type"), s.Type, msg))
		}
	}
	return errs
}

// ValidateUpdate also refuses a type change and changes to an immutable
// Secret.
func (s *Secret) ValidateUpdate(old *Secret) field.ErrorList {
	var errs field.ErrorList
	if s.Type != old.Type {
		errs = append(errs, field.Invalid(field.NewPath("type"), s.Type, "field is immutable"))
	}
	if isTrue(old.Immutable) {
		if !isTrue(s.Immutable) {
			errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
		}
		if !equalBytes(s.Data, old.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
		}
	}
	return append(errs, s.Validate()...)
}

// Validate checks the ServiceAccount's name and the Secret names it
// refers to.
func (a *ServiceAccount) Validate() field.ErrorList {
	errs := ValidateObjectName(namePath, a.Name)
	errs = append(errs, validateLabels(a.Labels)...)
	for i, n := range a.Secrets {
		errs = append(errs, ValidateObjectName(field.NewPath("secrets").Index(i).Child("name"), n)...)
	}
	for i, n := range a.ImagePullSecrets {
		errs = append(errs, ValidateObjectName(field.NewPath("imagePullSecrets").Index(i).Child("name"), n)...)
	}
	return errs
}

func validateKey(p *field.Path, k string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsConfigMapKey(k) {
		errs = append(errs, field.Invalid(p, k, msg))
	}
	return errs
}

// validateLabels is ValidateLabels as a field error list.
func validateLabels(labels map[string]string) field.ErrorList {
	if err := ValidateLabels("metadata.labels", labels); err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("metadata", "labels"), "", err.Error())}
	}
	return nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// equalStrings treats nil and empty alike: both encode the same.
func equalStrings(a, b map[string]string) bool {
	return len(a) == len(b) && (len(a) == 0 || maps.Equal(a, b))
}

func equalBytes(a, b map[string][]byte) bool {
	return len(a) == len(b) && maps.EqualFunc(a, b, bytes.Equal)
}

// DeepCopy returns an independent copy of c.
func (c *ConfigMap) DeepCopy() *ConfigMap {
	if c == nil {
		return nil
	}
	out := *c
	out.ObjectMeta = c.ObjectMeta.deepCopy()
	out.Data = maps.Clone(c.Data)
	out.BinaryData = cloneBytesMap(c.BinaryData)
	out.Immutable = cloneBool(c.Immutable)
	return &out
}

// DeepCopy returns an independent copy of s.
func (s *Secret) DeepCopy() *Secret {
	if s == nil {
		return nil
	}
	out := *s
	out.ObjectMeta = s.ObjectMeta.deepCopy()
	out.Data = cloneBytesMap(s.Data)
	out.Immutable = cloneBool(s.Immutable)
	return &out
}

// DeepCopy returns an independent copy of a.
func (a *ServiceAccount) DeepCopy() *ServiceAccount {
	if a == nil {
		return nil
	}
	out := *a
	out.ObjectMeta = a.ObjectMeta.deepCopy()
	out.Secrets = slices.Clone(a.Secrets)
	out.ImagePullSecrets = slices.Clone(a.ImagePullSecrets)
	out.AutomountServiceAccountToken = cloneBool(a.AutomountServiceAccountToken)
	return &out
}

// cloneBytesMap copies the values too: maps.Clone would share them.
func cloneBytesMap(m map[string][]byte) map[string][]byte {
	if m == nil {
		return nil
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = bytes.Clone(v)
	}
	return out
}

func cloneBool(p *bool) *bool {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

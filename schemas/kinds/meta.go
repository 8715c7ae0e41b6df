package kinds

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/schemas"
)

// DefaultNamespace is the only namespace stored objects live in for now.
const DefaultNamespace = "default"

var (
	metaPath   = field.NewPath("metadata")
	specPath   = field.NewPath("spec")
	statusPath = field.NewPath("status")
)

// notSupported is the error for a field MiniKu does not implement.
func notSupported(p *field.Path, what string) *field.Error {
	msg := "not supported by MiniKu yet"
	if what != "" {
		msg += ": " + what
	}
	return &field.Error{Type: field.ErrorTypeForbidden, Field: p.String(), BadValue: field.OmitValueType{}, Detail: msg}
}

// NewUID returns a new object UID: 32 hex digits, as the seed API has
// always given.
func NewUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b)
}

func kubeTime(t time.Time) metav1.Time {
	if t.IsZero() {
		return metav1.Time{}
	}
	return metav1.NewTime(t)
}

func kubeTimePtr(t *time.Time) *metav1.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	v := metav1.NewTime(*t)
	return &v
}

func timePtr(t *metav1.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	v := t.UTC()
	return &v
}

func ptrTo[T any](v T) *T { return &v }

// metaToKube is the wire metadata of a stored object.
func metaToKube(m *schemas.ObjectMeta, namespaced bool) (metav1.ObjectMeta, error) {
	out := metav1.ObjectMeta{
		Name:              m.Name,
		GenerateName:      m.GenerateName,
		UID:               types.UID(m.UID),
		Generation:        m.Generation,
		CreationTimestamp: kubeTime(m.CreatedAt),
		Labels:            maps.Clone(m.Labels),
		Annotations:       maps.Clone(m.Annotations),
		Finalizers:        slices.Clone(m.Finalizers),
		DeletionTimestamp: kubeTimePtr(m.DeletionTimestamp),
	}
	if out.DeletionTimestamp != nil && m.DeletionGracePeriodSeconds != nil {
		out.DeletionGracePeriodSeconds = ptrTo(*m.DeletionGracePeriodSeconds)
	}
	if namespaced {
		out.Namespace = DefaultNamespace
	}
	if m.ResourceVersion != 0 {
		out.ResourceVersion = strconv.FormatUint(m.ResourceVersion, 10)
	}
	for _, r := range m.OwnerReferences {
		out.OwnerReferences = append(out.OwnerReferences, kubeOwnerRef(r))
	}
	if len(m.ManagedFields) > 0 {
		if err := json.Unmarshal(m.ManagedFields, &out.ManagedFields); err != nil {
			return out, fmt.Errorf("kinds: %s: stored managedFields: %w", m.Name, err)
		}
	}
	return out, nil
}

func typesUID(s string) types.UID { return types.UID(s) }

func kubeOwnerRef(r schemas.OwnerReference) metav1.OwnerReference {
	k := metav1.OwnerReference{APIVersion: r.APIVersion, Kind: r.Kind, Name: r.Name, UID: types.UID(r.UID)}
	if r.Controller {
		k.Controller = ptrTo(true)
	}
	if r.BlockOwnerDeletion {
		k.BlockOwnerDeletion = ptrTo(true)
	}
	return k
}

// metaFromKube is the stored metadata of a wire object. Server-owned
// fields (uid, resourceVersion, creationTimestamp, generation) are kept
// so an update can be checked against them; the strategies decide what
// a writer may set. deletionTimestamp and deletionGracePeriodSeconds are
// kept too, for the same reason: only a delete sets them (createMeta
// clears them, carryMeta takes them from the stored object).
func metaFromKube(m *metav1.ObjectMeta, namespaced bool) (schemas.ObjectMeta, field.ErrorList) {
	var errs field.ErrorList
	out := schemas.ObjectMeta{
		Name:         m.Name,
		GenerateName: m.GenerateName,
		UID:          string(m.UID),
		Generation:   m.Generation,
		CreatedAt:    m.CreationTimestamp.UTC(),
		Labels:       maps.Clone(m.Labels),
		Annotations:  maps.Clone(m.Annotations),
		Finalizers:   slices.Clone(m.Finalizers),
	}
	if m.CreationTimestamp.IsZero() {
		out.CreatedAt = time.Time{}
	}
	out.DeletionTimestamp = timePtr(m.DeletionTimestamp)
	if out.DeletionTimestamp != nil && m.DeletionGracePeriodSeconds != nil {
		out.DeletionGracePeriodSeconds = ptrTo(*m.DeletionGracePeriodSeconds)
	}
	errs = append(errs, checkNamespace(m.Namespace, namespaced)...)
	if m.ResourceVersion != "" {
		rv, err := strconv.ParseUint(m.ResourceVersion, 10, 64)
		if err != nil {
			errs = append(errs, field.Invalid(metaPath.Child("resourceVersion"), m.ResourceVersion, "must be a resourceVersion this server gave (a decimal number)"))
		}
		out.ResourceVersion = rv
	}
	for _, r := range m.OwnerReferences {
		// false and absent mean the same for controller and
		// blockOwnerDeletion; both are kept as absent.
		out.OwnerReferences = append(out.OwnerReferences, schemas.OwnerReference{
			APIVersion: r.APIVersion, Kind: r.Kind, Name: r.Name, UID: string(r.UID),
			Controller: r.Controller != nil && *r.Controller, BlockOwnerDeletion: r.BlockOwnerDeletion != nil && *r.BlockOwnerDeletion,
		})
	}
	if len(m.ManagedFields) > 0 {
		raw, err := json.Marshal(m.ManagedFields)
		if err != nil {
			errs = append(errs, field.Invalid(metaPath.Child("managedFields"), "", err.Error()))
		}
		out.ManagedFields = raw
	}
	// selfLink is ignored, as Kubernetes has done since 1.24.
	return out, errs
}

func checkNamespace(ns string, namespaced bool) field.ErrorList {
	p := metaPath.Child("namespace")
	switch {
	case !namespaced && ns != "":
		return field.ErrorList{field.Forbidden(p, "not allowed on a cluster-scoped kind")}
	case namespaced && ns != "" && ns != DefaultNamespace:
		return field.ErrorList{field.Invalid(p, ns, "MiniKu keeps objects only in namespace default for now")}
	}
	return nil
}

// validateMeta checks what the seed's Validate methods do not: the
// Kubernetes-only metadata.
func validateMeta(m *schemas.ObjectMeta) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, apivalidation.ValidateAnnotations(m.Annotations, metaPath.Child("annotations"))...)
	errs = append(errs, apivalidation.ValidateFinalizers(m.Finalizers, metaPath.Child("finalizers"))...)
	if m.GenerateName != "" && len(m.GenerateName) > schemas.MaxNameLength {
		errs = append(errs, field.TooLong(metaPath.Child("generateName"), m.GenerateName, schemas.MaxNameLength))
	}
	refs := make([]metav1.OwnerReference, 0, len(m.OwnerReferences))
	for _, r := range m.OwnerReferences {
		refs = append(refs, kubeOwnerRef(r))
	}
	errs = append(errs, apivalidation.ValidateOwnerReferences(refs, metaPath.Child("ownerReferences"))...)
	if len(m.ManagedFields) > 0 {
		var mf []metav1.ManagedFieldsEntry
		if err := json.Unmarshal(m.ManagedFields, &mf); err != nil {
			errs = append(errs, field.Invalid(metaPath.Child("managedFields"), "", "must be a list of managed fields entries: "+err.Error()))
		}
	}
	return errs
}

// fieldErrors turns the seed's joined *schemas.FieldError into a field
// list, mapping each seed field name to its Kubernetes path with rename
// (longest matching prefix wins).
func fieldErrors(err error, rename map[string]string) field.ErrorList {
	if err == nil {
		return nil
	}
	var flat []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		flat = append(flat, e)
	}
	walk(err)
	var out field.ErrorList
	for _, e := range flat {
		var fe *schemas.FieldError
		if !errors.As(e, &fe) {
			out = append(out, field.InternalError(nil, e))
			continue
		}
		out = append(out, &field.Error{Type: field.ErrorTypeInvalid, Field: renamePath(fe.Field, rename), BadValue: field.OmitValueType{}, Detail: fe.Msg})
	}
	return out
}

func renamePath(f string, rename map[string]string) string {
	best := ""
	for from := range rename {
		if (f == from || strings.HasPrefix(f, from+".") || strings.HasPrefix(f, from+"[")) && len(from) > len(best) {
			best = from
		}
	}
	if best == "" {
		return f
	}
	return rename[best] + f[len(best):]
}

// metaRename maps the seed's metadata field names.
var metaRename = map[string]string{"name": "metadata.name", "labels": "metadata.labels"}

// carryMeta keeps on obj the metadata an update may not change.
func carryMeta(obj, old *schemas.ObjectMeta) {
	if obj.UID == "" {
		obj.UID = old.UID // validateMetaUpdate refuses a different one
	}
	obj.CreatedAt = old.CreatedAt
	obj.Generation = old.Generation
	obj.GenerateName = old.GenerateName
	// Only a delete marks an object; once marked it stays so.
	obj.DeletionTimestamp, obj.DeletionGracePeriodSeconds = old.DeletionTimestamp, old.DeletionGracePeriodSeconds
}

// validateMetaUpdate refuses changes to immutable metadata a client sent.
func validateMetaUpdate(obj, old *schemas.ObjectMeta) field.ErrorList {
	var errs field.ErrorList
	if obj.Name != old.Name {
		errs = append(errs, field.Invalid(metaPath.Child("name"), obj.Name, "field is immutable"))
	}
	if obj.UID != old.UID {
		errs = append(errs, field.Invalid(metaPath.Child("uid"), obj.UID, "field is immutable"))
	}
	if added := AddedFinalizers(obj, old); old.DeletionTimestamp != nil && len(added) > 0 {
		errs = append(errs, field.Forbidden(metaPath.Child("finalizers"), fmt.Sprintf("no new finalizers can be added if the object is being deleted, found new finalizers %q", added)))
	}
	return errs
}

// AddedFinalizers are obj's finalizers old does not have.
func AddedFinalizers(obj, old *schemas.ObjectMeta) []string {
	var out []string
	for _, f := range obj.Finalizers {
		if !slices.Contains(old.Finalizers, f) {
			out = append(out, f)
		}
	}
	return out
}

// nameColumn and ageColumn are every table's, as kube-apiserver's.
var (
	nameColumn = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]}
	ageColumn  = metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]}
)

// Ago is a table cell that reads differently as time passes: Format
// with each %s replaced by the time from one of Times to the table's now,
// as kubectl prints ages ("5m", "3 (10s ago)"); a zero time reads
// "<unknown>". Rows hold it instead of a string so that a row, encoded
// once per object revision, stays valid: only these cells are made again
// per request (Table does it at its now, and At for one cell).
type Ago struct {
	Format string
	Times  []time.Time
}

// At is the cell as read at now.
func (a Ago) At(now time.Time) string {
	if a.Format == "%s" && len(a.Times) == 1 {
		return since(a.Times[0], now)
	}
	args := make([]any, len(a.Times))
	for i, t := range a.Times {
		args[i] = since(t, now)
	}
	return fmt.Sprintf(a.Format, args...)
}

func since(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

// age is a creation time as kubectl prints it.
func age(t metav1.Time) Ago { return Ago{Format: "%s", Times: []time.Time{t.Time}} }

// createMeta resets what a creator may not set. The generation is
// stored as 0 at creation and read as 1 (Generation), so objects written
// before generations existed, and the seed API's responses, need none.
func createMeta(m *schemas.ObjectMeta, now time.Time) {
	m.UID = NewUID()
	m.CreatedAt = now.UTC()
	m.ResourceVersion = 0
	m.Generation = 0
	m.DeletionTimestamp, m.DeletionGracePeriodSeconds = nil, nil
}

// Generation is m's generation as Kubernetes counts it: 1 at creation.
func Generation(m *schemas.ObjectMeta) int64 { return max(m.Generation, 1) }

// bumpGeneration counts a spec change.
func bumpGeneration(m *schemas.ObjectMeta) { m.Generation = Generation(m) + 1 }

func metaRV(rv uint64) string {
	if rv == 0 {
		return ""
	}
	return strconv.FormatUint(rv, 10)
}

package kinds

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/schemas"
)

func TestConfigKindsRegistered(t *testing.T) {
	for _, tc := range []struct {
		resource, kind string
		short          []string
	}{
		{"configmaps", "ConfigMap", []string{"cm"}},
		{"secrets", "Secret", nil},
		{"serviceaccounts", "ServiceAccount", []string{"sa"}},
	} {
		k, ok := ByResource(tc.resource)
		if !ok {
			t.Fatalf("%s not registered", tc.resource)
		}
		i := k.Info()
		if i.Kind != tc.kind || i.ListKind != tc.kind+"List" || !i.Namespaced || i.GroupVersion.String() != "v1" ||
			!slices.Equal(i.ShortNames, tc.short) || i.Bucket != tc.resource || !slices.Equal(i.Verbs, allVerbs) {
			t.Errorf("%s: %+v", tc.resource, i)
		}
	}
}

// meta fills the metadata a client round-trips.
func fullMeta(name string) schemas.ObjectMeta {
	return schemas.ObjectMeta{Name: name, UID: "0123", ResourceVersion: 42, CreatedAt: t0,
		Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"}, Finalizers: []string{"example.com/f"}}
}

func TestConfigMapRoundTrip(t *testing.T) {
	in := &schemas.ConfigMap{ObjectMeta: fullMeta("web.config"), Data: map[string]string{"a.conf": "x=1"},
		BinaryData: map[string][]byte{"logo.png": {0x89, 'P', 'N', 'G', 0}}, Immutable: ptrTo(true)}
	back := roundTrip(t, ConfigMap, in)
	if !reflect.DeepEqual(back, in) {
		t.Fatalf("round trip:\n%+v\n%+v", in, back)
	}
	wire, _ := ConfigMap.To(in)
	if wire.Namespace != DefaultNamespace || wire.ResourceVersion != "42" || wire.Kind != "ConfigMap" {
		t.Fatalf("wire meta: %+v", wire.ObjectMeta)
	}
	// The wire object shares nothing with the stored one (a cached copy).
	wire.Data["a.conf"] = "changed"
	wire.BinaryData["logo.png"][0] = 0
	if in.Data["a.conf"] != "x=1" || in.BinaryData["logo.png"][0] != 0x89 {
		t.Fatal("ToKube's output shares maps with the stored object")
	}
}

func TestSecretWire(t *testing.T) {
	in := &schemas.Secret{ObjectMeta: fullMeta("sh.helm.release.v1.web.v1"), Type: "helm.sh/release.v1",
		Data: map[string][]byte{"release": []byte("hunter2\x00")}}
	if back := roundTrip(t, Secret, in); !reflect.DeepEqual(back, in) {
		t.Fatalf("round trip:\n%+v\n%+v", in, back)
	}
	wire, _ := Secret.To(in)
	data, _ := json.Marshal(wire)
	// base64 on the wire, as k8s.io/api encodes []byte.
	if !strings.Contains(string(data), `"data":{"release":"aHVudGVyMgA="}`) || strings.Contains(string(data), "stringData") {
		t.Fatalf("wire JSON: %s", data)
	}

	// stringData is folded into data, its keys winning; type defaults.
	var k corev1.Secret
	if err := json.Unmarshal([]byte(`{"metadata":{"name":"db"},"data":{"a":"YQ==","b":"Yg=="},"stringData":{"b":"B","c":"C"}}`), &k); err != nil {
		t.Fatal(err)
	}
	s, errs := Secret.From(&k)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := map[string][]byte{"a": []byte("a"), "b": []byte("B"), "c": []byte("C")}
	if !reflect.DeepEqual(s.Data, want) || s.Type != schemas.SecretTypeOpaque {
		t.Fatalf("folded: %q type %q", s.Data, s.Type)
	}
	// Only stringData.
	k = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x"}, StringData: map[string]string{"k": "v"}}
	if s, _ := Secret.From(&k); string(s.Data["k"]) != "v" {
		t.Fatalf("stringData only: %q", s.Data)
	}
	// Bad base64 in data fails at decoding, before FromKube, as in Kubernetes.
	if err := json.Unmarshal([]byte(`{"data":{"a":"not base64!"}}`), &k); err == nil {
		t.Fatal("bad base64 decoded")
	}
}

func TestConfigStrategies(t *testing.T) {
	now := t0.Add(time.Hour)
	// Create resets identity and defaults the type.
	s := &schemas.Secret{ObjectMeta: schemas.ObjectMeta{Name: "s", UID: "forged", ResourceVersion: 9}}
	Secret.PrepareForCreate(s, now)
	if s.UID == "forged" || s.UID == "" || !s.CreatedAt.Equal(now) || s.ResourceVersion != 0 || s.Type != schemas.SecretTypeOpaque {
		t.Fatalf("PrepareForCreate: %+v", s)
	}
	if errs := Secret.Validate(s); len(errs) != 0 {
		t.Fatal(errs)
	}
	// Update keeps identity; the type cannot change.
	upd := s.DeepCopy()
	upd.UID, upd.CreatedAt, upd.Type = "", time.Time{}, "example.com/other"
	Secret.PrepareForUpdate(upd, s)
	if upd.UID != s.UID || !upd.CreatedAt.Equal(s.CreatedAt) {
		t.Fatalf("PrepareForUpdate lost identity: %+v", upd)
	}
	wantErr(t, Secret.ValidateUpdate(upd, s), "type")

	// Immutable ConfigMap: data changes refused with the field path,
	// through the same generic face the REST handler uses.
	old := &schemas.ConfigMap{ObjectMeta: schemas.ObjectMeta{Name: "c"}, Data: map[string]string{"k": "v"}, Immutable: ptrTo(true)}
	ConfigMap.PrepareForCreate(old, now)
	cm := old.DeepCopy()
	cm.Data["k"] = "w"
	ConfigMap.PrepareForUpdate(cm, old)
	wantErr(t, ConfigMap.ValidateUpdate(cm, old), "data")
	// Renames refused.
	renamed := old.DeepCopy()
	renamed.Name = "d"
	wantErr(t, ConfigMap.ValidateUpdate(renamed, old), "metadata.name")
	// Bad annotations: the shared metadata rules apply.
	bad := old.DeepCopy()
	bad.Annotations = map[string]string{"not a key!": ""}
	wantErr(t, ConfigMap.Validate(bad), "metadata.annotations")

	sa := NewDefaultServiceAccount(now)
	if sa.Name != "default" || sa.UID == "" || !sa.CreatedAt.Equal(now) {
		t.Fatalf("default service account: %+v", sa)
	}
	if errs := ServiceAccount.Validate(sa); len(errs) != 0 {
		t.Fatal(errs)
	}
}

func wantErr(t *testing.T, errs field.ErrorList, path string) {
	t.Helper()
	for _, e := range errs {
		if e.Field == path {
			return
		}
	}
	t.Fatalf("no error for %s in %v", path, errs)
}

func TestServiceAccountWire(t *testing.T) {
	in := &schemas.ServiceAccount{ObjectMeta: fullMeta("builder"), Secrets: []string{"tok"}, ImagePullSecrets: []string{"regcred"}, AutomountServiceAccountToken: ptrTo(false)}
	if back := roundTrip(t, ServiceAccount, in); !reflect.DeepEqual(back, in) {
		t.Fatalf("round trip:\n%+v\n%+v", in, back)
	}
	k := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Secrets: []corev1.ObjectReference{{Name: "ok", Namespace: "default"}, {Name: "x", Kind: "Secret", Namespace: "other"}}}
	_, errs := ServiceAccount.From(k)
	if len(errs) != 1 || errs[0].Field != "secrets[1]" || !strings.Contains(errs[0].Detail, "not supported by MiniKu yet") {
		t.Fatalf("errors: %v", errs)
	}
	// Another namespace is refused for every kind, with its path.
	for _, obj := range []runtime.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "kube-system"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "kube-system"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "kube-system"}},
	} {
		kind, _ := ByResource(strings.ToLower(reflect.TypeOf(obj).Elem().Name()) + "s")
		_, errs := kind.FromKube(obj)
		wantErr(t, errs, "metadata.namespace")
	}
}

// Deletion metadata is only a delete's: a create drops what a client
// sent, an update keeps the stored one, and a terminating object takes
// no new finalizer (kube-apiserver's ValidateObjectMetaUpdate).
func TestDeletionMetadata(t *testing.T) {
	now := metav1.NewTime(t0)
	k := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", DeletionTimestamp: &now, DeletionGracePeriodSeconds: ptrTo(int64(0)), Finalizers: []string{"example.com/a"}}}
	c, errs := ConfigMap.From(k)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	ConfigMap.Create(c, t0)
	if c.DeletionTimestamp != nil || c.DeletionGracePeriodSeconds != nil {
		t.Fatalf("create kept deletion metadata: %v %v", c.DeletionTimestamp, c.DeletionGracePeriodSeconds)
	}
	old := c.DeepCopy()
	del := t0.Add(time.Minute)
	old.DeletionTimestamp, old.DeletionGracePeriodSeconds = &del, ptrTo(int64(0))
	back, err := ConfigMap.To(old)
	if err != nil {
		t.Fatal(err)
	}
	if back.DeletionTimestamp == nil || !back.DeletionTimestamp.Time.Equal(del) || back.DeletionGracePeriodSeconds == nil || *back.DeletionGracePeriodSeconds != 0 {
		t.Fatalf("wire deletion metadata: %v %v", back.DeletionTimestamp, back.DeletionGracePeriodSeconds)
	}
	for _, tc := range []struct {
		name       string
		finalizers []string
		wantErr    bool
	}{
		{"same", []string{"example.com/a"}, false},
		{"removed", nil, false},
		{"added", []string{"example.com/a", "example.com/b"}, true},
		{"replaced", []string{"example.com/b"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upd := c.DeepCopy()
			upd.Finalizers = tc.finalizers
			upd.DeletionTimestamp = nil // a client cannot unmark it
			ConfigMap.Update(upd, old)
			if upd.DeletionTimestamp == nil || !upd.DeletionTimestamp.Equal(del) {
				t.Fatalf("update lost deletionTimestamp: %v", upd.DeletionTimestamp)
			}
			errs := ConfigMap.CheckUpdate(upd, old)
			if tc.wantErr {
				wantErr(t, errs, "metadata.finalizers")
			} else if len(errs) > 0 {
				t.Fatal(errs)
			}
			// Not terminating: any finalizer may be added.
			live := c.DeepCopy()
			upd2 := c.DeepCopy()
			upd2.Finalizers = tc.finalizers
			ConfigMap.Update(upd2, live)
			if errs := ConfigMap.CheckUpdate(upd2, live); len(errs) > 0 {
				t.Fatal(errs)
			}
		})
	}
}

func TestConfigTables(t *testing.T) {
	now := t0.Add(90 * time.Second)
	cm, _ := ConfigMap.To(&schemas.ConfigMap{ObjectMeta: schemas.ObjectMeta{Name: "c", CreatedAt: t0}, Data: map[string]string{"a": "", "b": ""}, BinaryData: map[string][]byte{"c": nil}})
	sec, _ := Secret.To(&schemas.Secret{ObjectMeta: schemas.ObjectMeta{Name: "s", CreatedAt: t0}, Type: "Opaque", Data: map[string][]byte{"a": nil}})
	sa, _ := ServiceAccount.To(&schemas.ServiceAccount{ObjectMeta: schemas.ObjectMeta{Name: "default", CreatedAt: t0}})
	for _, tc := range []struct {
		kind Kind
		obj  runtime.Object
		cols []string
		row  []any
	}{
		{ConfigMap, cm, []string{"Name", "Data", "Age"}, []any{"c", int64(3), "90s"}},
		{Secret, sec, []string{"Name", "Type", "Data", "Age"}, []any{"s", "Opaque", int64(1), "90s"}},
		{ServiceAccount, sa, []string{"Name", "Secrets", "Age"}, []any{"default", int64(0), "90s"}},
	} {
		tab, err := tc.kind.Table([]runtime.Object{tc.obj}, now)
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for _, c := range tab.ColumnDefinitions {
			cols = append(cols, c.Name)
			if c.Description == "" {
				t.Errorf("%s: column %s has no description", tc.kind.Info().Resource, c.Name)
			}
		}
		if !slices.Equal(cols, tc.cols) || len(tab.Rows) != 1 || !reflect.DeepEqual(tab.Rows[0].Cells, tc.row) {
			t.Errorf("%s: columns %v rows %+v", tc.kind.Info().Resource, cols, tab.Rows)
		}
	}
}

// FuzzConfigFromKube: any JSON body a client sends as a ConfigMap or a
// Secret gives field errors or an object that converts back, never a
// panic.
func FuzzConfigFromKube(f *testing.F) {
	f.Add([]byte(`{"metadata":{"name":"a","namespace":"default"},"data":{"k":"v"},"binaryData":{"b":"AAE="},"immutable":true}`))
	f.Add([]byte(`{"metadata":{"name":"a"},"type":"kubernetes.io/tls","data":{"tls.crt":"eA=="},"stringData":{"tls.key":"k"}}`))
	f.Add([]byte(`{"metadata":{"name":"a","resourceVersion":"x","ownerReferences":[{"controller":false}]},"stringData":{"":""}}`))
	f.Add([]byte(`{"metadata":{"managedFields":[{"manager":"m","fieldsV1":{}}]},"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"e30="}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range []Kind{ConfigMap, Secret} {
			obj := k.NewKube()
			if json.Unmarshal(data, obj) != nil {
				continue
			}
			stored, errs := k.FromKube(obj)
			if len(errs) > 0 {
				continue
			}
			k.PrepareForCreate(stored, t0)
			_ = k.Validate(stored)
			_ = k.ValidateUpdate(stored, stored)
			wire, err := k.ToKube(stored)
			if err != nil {
				t.Fatalf("%s: ToKube of an accepted object: %v", k.Info().Resource, err)
			}
			if _, err := k.Table([]runtime.Object{wire}, t0); err != nil {
				t.Fatal(err)
			}
		}
	})
}

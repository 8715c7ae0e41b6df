package schemas

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func ptrTrue() *bool { b := true; return &b }

// errFields is the errors as one string, to look for a field path in.
func errFields(t *testing.T, errs field.ErrorList) string {
	t.Helper()
	if agg := errs.ToAggregate(); agg != nil {
		return agg.Error()
	}
	return ""
}

func TestConfigMapValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cm   ConfigMap
		want string // substring of the errors; "" means valid
	}{
		{"ok", ConfigMap{ObjectMeta: ObjectMeta{Name: "app.config"}, Data: map[string]string{"a.b_c-D": "x"}, BinaryData: map[string][]byte{"bin": {0, 1}}}, ""},
		{"empty", ConfigMap{ObjectMeta: ObjectMeta{Name: "c"}}, ""},
		{"no name", ConfigMap{}, "metadata.name: Required value"},
		{"bad name", ConfigMap{ObjectMeta: ObjectMeta{Name: "Bad_Name"}}, "metadata.name: Invalid value"},
		{"bad key", ConfigMap{ObjectMeta: ObjectMeta{Name: "c"}, Data: map[string]string{"a/b": "x"}}, "data[a/b]: Invalid value"},
		{"dot key", ConfigMap{ObjectMeta: ObjectMeta{Name: "c"}, Data: map[string]string{"..": "x"}}, "data[..]: Invalid value"},
		{"bad binary key", ConfigMap{ObjectMeta: ObjectMeta{Name: "c"}, BinaryData: map[string][]byte{"a b": nil}}, "binaryData[a b]: Invalid value"},
		{"duplicate", ConfigMap{ObjectMeta: ObjectMeta{Name: "c"}, Data: map[string]string{"k": "x"}, BinaryData: map[string][]byte{"k": nil}}, "duplicate of key present in binaryData"},
		{"too big", ConfigMap{ObjectMeta: ObjectMeta{Name: "c"}, Data: map[string]string{"a": strings.Repeat("x", MaxConfigSize/2)}, BinaryData: map[string][]byte{"b": make([]byte, MaxConfigSize/2+1)}}, "Too long"},
		{"exactly max", ConfigMap{ObjectMeta: ObjectMeta{Name: "c"}, Data: map[string]string{"a": strings.Repeat("x", MaxConfigSize)}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := errFields(t, tc.cm.Validate())
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfigMapImmutable(t *testing.T) {
	old := &ConfigMap{ObjectMeta: ObjectMeta{Name: "c"}, Data: map[string]string{"k": "v"}, Immutable: ptrTrue()}
	same := old.DeepCopy()
	same.Labels = map[string]string{"a": "b"} // metadata may change
	if errs := same.ValidateUpdate(old); len(errs) != 0 {
		t.Fatalf("label change on an immutable ConfigMap refused: %v", errs)
	}
	changed := old.DeepCopy()
	changed.Data["k"] = "w"
	if got := errFields(t, changed.ValidateUpdate(old)); !strings.Contains(got, "data: Forbidden: field is immutable when `immutable` is set") {
		t.Fatalf("data change: %q", got)
	}
	unfrozen := old.DeepCopy()
	unfrozen.Immutable = nil
	if got := errFields(t, unfrozen.ValidateUpdate(old)); !strings.Contains(got, "immutable: Forbidden") {
		t.Fatalf("immutable unset: %q", got)
	}
	bin := old.DeepCopy()
	bin.BinaryData = map[string][]byte{"b": {1}}
	if got := errFields(t, bin.ValidateUpdate(old)); !strings.Contains(got, "binaryData: Forbidden") {
		t.Fatalf("binaryData added: %q", got)
	}
	// A mutable one changes freely, and may become immutable.
	mut := &ConfigMap{ObjectMeta: ObjectMeta{Name: "c"}, Data: map[string]string{"k": "v"}}
	next := mut.DeepCopy()
	next.Data["k"] = "w"
	next.Immutable = ptrTrue()
	if errs := next.ValidateUpdate(mut); len(errs) != 0 {
		t.Fatalf("mutable update refused: %v", errs)
	}
}

func TestSecretValidate(t *testing.T) {
	meta := ObjectMeta{Name: "sh.helm.release.v1.web.v1"}
	for _, tc := range []struct {
		name string
		s    Secret
		want string
	}{
		{"opaque", Secret{ObjectMeta: meta, Type: SecretTypeOpaque, Data: map[string][]byte{"password": []byte("hunter2")}}, ""},
		{"helm", Secret{ObjectMeta: meta, Type: "helm.sh/release.v1", Data: map[string][]byte{"release": []byte("H4sI")}}, ""},
		{"bad type", Secret{ObjectMeta: meta, Type: "not a type!"}, "type: Invalid value"},
		{"token", Secret{ObjectMeta: meta, Type: SecretTypeServiceAccountToken}, "type: Unsupported value"},
		{"bad key", Secret{ObjectMeta: meta, Data: map[string][]byte{"a:b": nil}}, "data[a:b]: Invalid value"},
		{"too big", Secret{ObjectMeta: meta, Data: map[string][]byte{"a": make([]byte, MaxConfigSize), "b": {1}}}, "data: Too long"},
		{"tls", Secret{ObjectMeta: meta, Type: SecretTypeTLS, Data: map[string][]byte{"tls.crt": nil}}, "data[tls.key]: Required value"},
		{"basic", Secret{ObjectMeta: meta, Type: SecretTypeBasicAuth}, "data[username]: Required value"},
		{"basic user only", Secret{ObjectMeta: meta, Type: SecretTypeBasicAuth, Data: map[string][]byte{"username": []byte("u")}}, ""},
		{"ssh", Secret{ObjectMeta: meta, Type: SecretTypeSSHAuth}, "data[ssh-privatekey]: Required value"},
		{"dockerconfigjson", Secret{ObjectMeta: meta, Type: SecretTypeDockerConfigJSON, Data: map[string][]byte{".dockerconfigjson": []byte("{not json, top-secret")}}, "<secret contents redacted>"},
		{"dockerconfigjson ok", Secret{ObjectMeta: meta, Type: SecretTypeDockerConfigJSON, Data: map[string][]byte{".dockerconfigjson": []byte(`{"auths":{}}`)}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := errFields(t, tc.s.Validate())
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("Validate() = %q, want %q", got, tc.want)
			}
			if strings.Contains(got, "top-secret") || strings.Contains(got, "hunter2") {
				t.Fatalf("an error shows the secret's data: %q", got)
			}
		})
	}
}

func TestSecretUpdate(t *testing.T) {
	old := &Secret{ObjectMeta: ObjectMeta{Name: "s"}, Type: SecretTypeOpaque, Data: map[string][]byte{"k": []byte("v")}}
	retyped := old.DeepCopy()
	retyped.Type = "other.io/x"
	if got := errFields(t, retyped.ValidateUpdate(old)); !strings.Contains(got, "type: Invalid value") || !strings.Contains(got, "immutable") {
		t.Fatalf("type change: %q", got)
	}
	old.Immutable = ptrTrue()
	changed := old.DeepCopy()
	changed.Data["k"] = []byte("w")
	if got := errFields(t, changed.ValidateUpdate(old)); !strings.Contains(got, "data: Forbidden") {
		t.Fatalf("data change of an immutable secret: %q", got)
	}
	if errs := old.DeepCopy().ValidateUpdate(old); len(errs) != 0 {
		t.Fatalf("no-op update refused: %v", errs)
	}
}

func TestServiceAccountValidate(t *testing.T) {
	ok := &ServiceAccount{ObjectMeta: ObjectMeta{Name: DefaultServiceAccount}, Secrets: []string{"tok"}, ImagePullSecrets: []string{"regcred"}}
	if errs := ok.Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
	bad := &ServiceAccount{ObjectMeta: ObjectMeta{Name: "sa"}, ImagePullSecrets: []string{"ok", "Not_OK"}}
	if got := errFields(t, bad.Validate()); !strings.Contains(got, "imagePullSecrets[1].name: Invalid value") {
		t.Fatalf("got %q", got)
	}
}

func TestConfigCodecRoundTrip(t *testing.T) {
	in := &Secret{ObjectMeta: ObjectMeta{Name: "s", UID: "u"}, Type: SecretTypeOpaque, Data: map[string][]byte{"bin": {0, 0xff, 1}, "empty": {}}, Immutable: ptrTrue()}
	data, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Secret
	if err := Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if out.Name != "s" || string(out.Data["bin"]) != "\x00\xff\x01" || !isTrue(out.Immutable) || out.Type != SecretTypeOpaque {
		t.Fatalf("round trip: %+v", out)
	}
}

func TestSecretNotPrinted(t *testing.T) {
	s := &Secret{ObjectMeta: ObjectMeta{Name: "db"}, Data: map[string][]byte{"password": []byte("hunter2")}}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "secret", s, "value", *s)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", *s), fmt.Sprintf("%v", []*Secret{s}), logged.String()} {
		if strings.Contains(out, "hunter2") || !strings.Contains(out, "db") {
			t.Errorf("printed as %q", out)
		}
	}
}

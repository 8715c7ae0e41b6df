package apiserver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// crud is what client-go's typed clients of ConfigMaps, Secrets and
// ServiceAccounts have in common.
type crud[T any, L runtime.Object] interface {
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// object is a typed Kubernetes object pointer.
type object interface {
	metav1.Object
	runtime.Object
}

// checkCRUD drives one kind through create, get, list, update (and a
// stale update), delete, and a watch started before the create that must
// show ADDED, MODIFIED, DELETED in order. body returns what of an object
// the test compares (its data); mutate changes it for the update.
func checkCRUD[T object, L runtime.Object](t *testing.T, c crud[T, L], obj T, body func(T) any, mutate func(T)) {
	t.Helper()
	ctx := kctx(t)
	name := obj.GetName()
	l0, err := c.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	lm, _ := meta.ListAccessor(l0)
	w, err := c.Watch(ctx, metav1.ListOptions{ResourceVersion: lm.GetResourceVersion()})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()

	want := body(obj)
	created, err := c.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.GetUID() == "" || created.GetResourceVersion() == "" || created.GetNamespace() != "default" || created.GetCreationTimestamp().Time.IsZero() {
		t.Errorf("created: uid %q rv %q ns %q created %v", created.GetUID(), created.GetResourceVersion(), created.GetNamespace(), created.GetCreationTimestamp())
	}
	if _, err := c.Create(ctx, obj, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create: %v, want AlreadyExists", err)
	}
	got, err := c.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if !reflect.DeepEqual(body(got), want) {
		t.Errorf("get: %#v, want %#v", body(got), want)
	}
	list, err := c.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	items, _ := meta.ExtractList(list)
	found := false
	for _, it := range items {
		if m, _ := meta.Accessor(it); m.GetName() == name {
			found = true
		}
	}
	if !found {
		t.Errorf("list of %d lacks %s", len(items), name)
	}

	mutate(got)
	wantUpdated := body(got)
	updated, err := c.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if updated.GetResourceVersion() == created.GetResourceVersion() || updated.GetUID() != created.GetUID() {
		t.Errorf("update: rv %s -> %s, uid %s -> %s", created.GetResourceVersion(), updated.GetResourceVersion(), created.GetUID(), updated.GetUID())
	}
	if again, err := c.Get(ctx, name, metav1.GetOptions{}); err != nil || !reflect.DeepEqual(body(again), wantUpdated) {
		t.Errorf("get after update: %v, %v; want %#v", err, body(again), wantUpdated)
	}
	// created carries the old revision: compare-and-swap refuses it.
	if _, err := c.Update(ctx, created, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("stale update: %v, want Conflict", err)
	}

	if err := c.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v, want NotFound", err)
	}
	if err := c.Delete(ctx, name, metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("second delete: %v, want NotFound", err)
	}

	var seen []string
	for _, typ := range []watch.EventType{watch.Added, watch.Modified, watch.Deleted} {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed after %v", seen)
			}
			m, err := meta.Accessor(ev.Object)
			if err != nil {
				t.Fatalf("watch event %s: %T", ev.Type, ev.Object)
			}
			seen = append(seen, fmt.Sprintf("%s %s", ev.Type, m.GetName()))
			if ev.Type != typ || m.GetName() != name {
				t.Fatalf("watch: %v, want %s %s next", seen, typ, name)
			}
			if typ == watch.Modified {
				tobj, ok := ev.Object.(T)
				if !ok || !reflect.DeepEqual(body(tobj), wantUpdated) {
					t.Errorf("watch MODIFIED: %#v, want %#v", ev.Object, wantUpdated)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch: %v, then nothing for 10 s", seen)
		}
	}
}

func TestKubeConfigMaps(t *testing.T) {
	e := startKube(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Labels: map[string]string{"app": "web"}},
		Data: map[string]string{"a": "b", "mode": "fast"}, BinaryData: map[string][]byte{"bin": {0, 1, 2}}}
	checkCRUD(t, e.client.CoreV1().ConfigMaps("default"), cm,
		func(c *corev1.ConfigMap) any { return []any{c.Data, c.BinaryData, c.Labels["app"]} },
		func(c *corev1.ConfigMap) { c.Data["mode"] = "slow"; delete(c.Data, "a") })
}

func TestKubeServiceAccounts(t *testing.T) {
	e := startKube(t)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}}
	checkCRUD(t, e.client.CoreV1().ServiceAccounts("default"), sa,
		func(a *corev1.ServiceAccount) any { return []any{a.ImagePullSecrets, a.Secrets} },
		func(a *corev1.ServiceAccount) { a.Secrets = []corev1.ObjectReference{{Name: "token"}} })
}

func TestKubeSecrets(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	const plain = "hunter2-plaintext-password"
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Data: map[string][]byte{"password": []byte(plain)}, StringData: map[string]string{"user": "admin-user-name"}}
	// stringData is folded into data on write and never read back.
	checkCRUD(t, e.client.CoreV1().Secrets("default"), s,
		func(s *corev1.Secret) any {
			d := map[string][]byte{}
			for k, v := range s.Data {
				d[k] = v
			}
			for k, v := range s.StringData {
				d[k] = []byte(v)
			}
			typ := s.Type
			if typ == "" {
				typ = corev1.SecretTypeOpaque // the default a write sets
			}
			return []any{d, typ}
		},
		func(s *corev1.Secret) { s.Data["password"] = []byte(plain + "-rotated") })

	secrets := e.client.CoreV1().Secrets("default")
	created, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kept"},
		Data: map[string][]byte{"password": []byte(plain)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = secrets.Delete(context.Background(), "kept", metav1.DeleteOptions{}) })
	if created.Type != corev1.SecretTypeOpaque || created.StringData != nil {
		t.Errorf("created: type %q stringData %v", created.Type, created.StringData)
	}
	got, err := secrets.Get(ctx, "kept", metav1.GetOptions{})
	if err != nil || string(got.Data["password"]) != plain {
		t.Fatalf("get: %v, %q", err, got.Data["password"])
	}
	// At rest the value is sealed: neither the plaintext nor its base64
	// is in the bucket's bytes.
	raw, err := e.conn.Secrets.KV().Get(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Value(), []byte(plain)) || bytes.Contains(raw.Value(), []byte("aHVudGVyMi")) || len(raw.Value()) < len(plain) {
		t.Errorf("raw KV value (%d bytes) holds the plaintext", len(raw.Value()))
	}
	// Nor in a plain decode of the bucket without the key.
	if bytes.Contains(raw.Value(), []byte("password")) {
		t.Errorf("raw KV value shows the key name: not sealed")
	}
}

// A Secret of Kubernetes' full 1 MiB (≈ 1.37 MiB of base64 on the wire)
// is stored and read back whole; one byte more is refused by validation
// (422), and a body over the 3 MiB request limit with 413.
func TestKubeSecretSizeLimits(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	secrets := e.client.CoreV1().Secrets("default")
	big := bytes.Repeat([]byte{0xa5, 0x5a, 0x00, 0xff}, schemas.MaxConfigSize/4)
	if _, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "big"},
		Data: map[string][]byte{"blob": big}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("1 MiB secret: %v", err)
	}
	got, err := secrets.Get(ctx, "big", metav1.GetOptions{})
	if err != nil || !bytes.Equal(got.Data["blob"], big) {
		t.Fatalf("get 1 MiB secret: %v (%d bytes back)", err, len(got.Data["blob"]))
	}
	_, err = secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bigger"},
		Data: map[string][]byte{"blob": append(big, 1)}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Errorf("1 MiB + 1 secret: %v, want 422 Invalid", err)
	}

	body := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"huge"},"data":{"blob":"` + strings.Repeat("QUFB", (3<<20)/4+1) + `"}}`
	resp, err := http.Post(e.url+"/api/v1/namespaces/default/secrets", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(msg), "3145728") {
		t.Errorf("3 MiB body: %d %s, want 413 naming the limit", resp.StatusCode, msg)
	}
}

// An apiserver whose connection has no secrets key serves the other
// kinds and refuses secrets with a 503 that says why.
func TestKubeSecretsWithoutKey(t *testing.T) {
	ns := bustest.Server(t, "", "")
	log := bustest.Logger(t)
	cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := bus.Connect(cctx, bus.Options{URL: ns.ClientURL(), Name: t.Name(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if conn.Secrets != nil {
		t.Fatal("a connection without a key has the secrets bucket")
	}
	e := startKubeOn(t, conn)
	ctx := kctx(t)
	_, err = e.client.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if st := statusOf(t, err); st.Code != http.StatusServiceUnavailable || !strings.Contains(st.Message, "no secrets key") {
		t.Errorf("list secrets: %d %q, want 503 naming the missing key", st.Code, st.Message)
	}
	_, err = e.client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{})
	if st := statusOf(t, err); st.Code != http.StatusServiceUnavailable {
		t.Errorf("create secret: %d %q, want 503", st.Code, st.Message)
	}
	if _, err := e.client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("configmaps without a secrets key: %v", err)
	}
}

package bus_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/bus/encrypt"
	"github.com/miniku/miniku/schemas"
)

const plaintext = "correct-horse-battery-staple"

func TestSecretsEncryptedAtRest(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	s := &schemas.Secret{ObjectMeta: schemas.ObjectMeta{Name: "db", Labels: map[string]string{"app": "db"}}, Type: schemas.SecretTypeOpaque,
		Data: map[string][]byte{"password": []byte(plaintext)}}
	if err := c.Secrets.Create(ctx, s); err != nil {
		t.Fatal(err)
	}

	// The value as JetStream holds it, read past the bus layer.
	js, err := jetstream.New(c.NATS())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := js.KeyValue(ctx, bus.BucketSecrets)
	if err != nil {
		t.Fatal(err)
	}
	e, err := raw.Get(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	stored := e.Value()
	for _, clear := range []string{plaintext, "password", "Opaque", "app"} {
		if bytes.Contains(stored, []byte(clear)) {
			t.Fatalf("stored value holds %q in clear: %q", clear, stored)
		}
	}
	if !bytes.HasPrefix(stored, []byte(encrypt.Prefix+"test:")) {
		t.Fatalf("stored value starts %q, want %stest:", stored[:min(len(stored), 24)], encrypt.Prefix)
	}
	// It decrypts back, with the bucket and key as additional data, to
	// what the reflection codec wrote.
	plain, err := bustest.SecretsKey().Open(stored, []byte("secrets/db"))
	if err != nil {
		t.Fatal(err)
	}
	var back schemas.Secret
	if err := schemas.Unmarshal(plain, &back); err != nil || string(back.Data["password"]) != plaintext {
		t.Fatalf("decrypted %+v, %v", back, err)
	}
	got, err := c.Secrets.Get(ctx, "db")
	if err != nil || string(got.Data["password"]) != plaintext || got.ResourceVersion != e.Revision() {
		t.Fatalf("Get = %+v, %v", got, err)
	}

	// An update is sealed afresh (new nonce), and CAS still holds.
	got.Data["password"] = []byte(plaintext + "2")
	if err := c.Secrets.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	e2, _ := raw.Get(ctx, "db")
	if bytes.Contains(e2.Value(), []byte(plaintext)) {
		t.Fatal("updated value holds the plaintext")
	}
	stale := back
	stale.ResourceVersion = e.Revision()
	if err := c.Secrets.Update(ctx, &stale); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}

	// Tampered with: one flipped byte of the ciphertext.
	bad := bytes.Clone(e2.Value())
	bad[len(bad)-5] ^= 1
	if _, err := raw.Put(ctx, "db", bad); err != nil {
		t.Fatal(err)
	}
	_, err = c.Secrets.Get(ctx, "db")
	if !errors.Is(err, bus.ErrMalformed) || !errors.Is(err, encrypt.ErrAuth) || !strings.Contains(err.Error(), "secrets/db") {
		t.Fatalf("tampered value: %v, want ErrMalformed and ErrAuth naming secrets/db", err)
	}

	// Moved: a good value of another key copied under this one.
	other := &schemas.Secret{ObjectMeta: schemas.ObjectMeta{Name: "other"}, Data: map[string][]byte{"k": []byte("v")}}
	if err := c.Secrets.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	oe, _ := raw.Get(ctx, "other")
	if _, err := raw.Put(ctx, "db", oe.Value()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Secrets.Get(ctx, "db"); !errors.Is(err, encrypt.ErrAuth) {
		t.Fatalf("moved value: %v, want ErrAuth", err)
	}
	// A plaintext value (written by something that bypassed the key).
	clear, _ := schemas.Marshal(&schemas.Secret{ObjectMeta: schemas.ObjectMeta{Name: "db"}})
	if _, err := raw.Put(ctx, "db", clear); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Secrets.Get(ctx, "db"); !errors.Is(err, encrypt.ErrNotSealed) {
		t.Fatalf("clear value: %v, want ErrNotSealed", err)
	}
	// List and an informer skip the bad value and keep the good one.
	list, err := c.Secrets.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "other" {
		t.Fatalf("List = %v, %v", list, err)
	}
	// DeleteMalformed removes it (the API's delete of garbage).
	if _, err := c.Secrets.DeleteMalformed(ctx, "db"); err != nil {
		t.Fatal(err)
	}

	// A value under a key this process lacks is not garbage: kept.
	otherKey, _ := encrypt.New(encrypt.Key{Name: "lost", Secret: bytes.Repeat([]byte{7}, 32)})
	lost, _ := otherKey.Seal(plain, []byte("secrets/lost"))
	if _, err := raw.Put(ctx, "lost", lost); err != nil {
		t.Fatal(err)
	}
	_, err = c.Secrets.Get(ctx, "lost")
	if !errors.Is(err, encrypt.ErrUnknownKey) || errors.Is(err, bus.ErrMalformed) {
		t.Fatalf("unknown key: %v, want ErrUnknownKey and not ErrMalformed", err)
	}
	if _, err := c.Secrets.DeleteMalformed(ctx, "lost"); err == nil {
		t.Fatal("DeleteMalformed removed a value under an unknown key")
	}
}

// The informer (the apiserver's cache) decrypts too.
func TestSecretsInformer(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inf := bus.NewInformer(c, c.Secrets, time.Minute, bustest.Logger(t))
	done := make(chan error, 1)
	go func() { done <- inf.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := c.Secrets.Create(ctx, &schemas.Secret{ObjectMeta: schemas.ObjectMeta{Name: "s"}, Data: map[string][]byte{"k": []byte(plaintext)}}); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		s, ok := inf.Get("s")
		if !ok {
			return errors.New("not in the cache yet")
		}
		if string(s.Data["k"]) != plaintext {
			return errors.New("cached secret has other data")
		}
		return nil
	})
}

func TestConfigMapsAndServiceAccountsBuckets(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	cm := &schemas.ConfigMap{ObjectMeta: schemas.ObjectMeta{Name: "cfg"}, Data: map[string]string{"k": "v"}, BinaryData: map[string][]byte{"b": {0, 1}}}
	if err := c.ConfigMaps.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigMaps.Create(ctx, cm.DeepCopy()); !errors.Is(err, bus.ErrAlreadyExists) {
		t.Fatalf("second create: %v", err)
	}
	got, err := c.ConfigMaps.Get(ctx, "cfg")
	if err != nil || got.Data["k"] != "v" || !bytes.Equal(got.BinaryData["b"], []byte{0, 1}) {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	// Stored in clear, with the reflection codec: not a secret.
	raw, _ := c.ConfigMaps.KV().Get(ctx, "cfg")
	var back schemas.ConfigMap
	if err := schemas.Unmarshal(raw.Value(), &back); err != nil || back.Data["k"] != "v" {
		t.Fatalf("raw value: %+v, %v", back, err)
	}
	sa := &schemas.ServiceAccount{ObjectMeta: schemas.ObjectMeta{Name: "default"}, ImagePullSecrets: []string{"regcred"}}
	if err := c.ServiceAccounts.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ServiceAccounts.Get(ctx, "default"); err != nil || got.ImagePullSecrets[0] != "regcred" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	// A connection without a key has no secrets bucket.
	nokey, err := bus.Connect(ctx, bus.Options{URL: ns.ClientURL(), Logger: bustest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer nokey.Close()
	if nokey.Secrets != nil || nokey.ConfigMaps == nil {
		t.Fatal("a connection without a secrets key got the secrets bucket, or no configmaps")
	}
}

// Only the apiserver's NATS user reads or writes the secrets bucket, by
// the bus and by the raw JetStream API; the viewer still reads the rest.
func TestSecretsOnlyForTheAPIServer(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1")
	url := ns.ClientURL()
	ctx := context.Background()
	api := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	if err := api.Secrets.Create(ctx, &schemas.Secret{ObjectMeta: schemas.ObjectMeta{Name: "db"}, Data: map[string][]byte{"p": []byte(plaintext)}}); err != nil {
		t.Fatalf("apiserver writes a secret: %v", err)
	}
	if s, err := api.Secrets.Get(ctx, "db"); err != nil || string(s.Data["p"]) != plaintext {
		t.Fatalf("apiserver reads a secret: %+v, %v", s, err)
	}
	w, err := api.Secrets.KV().WatchAll(ctx)
	if err != nil {
		t.Fatalf("apiserver watches secrets: %v", err)
	}
	select {
	case e := <-w.Updates():
		if e == nil || e.Key() != "db" {
			t.Fatalf("apiserver's watch: %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("apiserver's watch got nothing")
	}
	_ = w.Stop()
	if err := api.ConfigMaps.Create(ctx, &schemas.ConfigMap{ObjectMeta: schemas.ObjectMeta{Name: "cfg"}}); err != nil {
		t.Fatal(err)
	}

	// The other users connect as they always do (no secrets bucket) …
	for _, u := range []string{bus.UserScheduler, bus.UserController} {
		if c := bustest.ConnAs(t, url, authDir, u, false); c.Secrets != nil {
			t.Fatalf("%s has a secrets bucket", u)
		}
	}
	kubelet := bustest.ConnAs(t, url, authDir, bus.KubeletUser("node-1"), true)
	if _, err := kubelet.ConfigMaps.Get(ctx, "cfg"); err != nil {
		t.Fatalf("kubelet reads configmaps: %v", err)
	}

	// … and none of them, nor the viewer, gets at it directly.
	for _, u := range []string{bus.UserViewer, bus.UserScheduler, bus.UserController, bus.KubeletUser("node-1"), bus.UserHollow} {
		t.Run(u, func(t *testing.T) {
			nc, errs := rawAs(t, url, authDir, u)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			tctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			if _, err := js.KeyValue(tctx, bus.BucketSecrets); err == nil {
				t.Fatal("bound to the secrets bucket")
			}
			wantViolation(t, errs, "$JS.API.STREAM.INFO.KV_secrets")
			// The calls a Get and a Watch make, by hand: refused.
			for _, subj := range []string{
				"$JS.API.DIRECT.GET.KV_secrets.$KV.secrets.db",
				"$JS.API.STREAM.MSG.GET.KV_secrets",
				"$JS.API.CONSUMER.CREATE.KV_secrets.x.$KV.secrets.>",
				"$JS.API.CONSUMER.DURABLE.CREATE.KV_secrets.x",
				"$JS.API.STREAM.UPDATE.KV_secrets",
				"$JS.API.STREAM.SNAPSHOT.KV_secrets",
				"$KV.secrets.db",
			} {
				if err := nc.PublishRequest(subj, nc.NewRespInbox(), []byte(`{"last_by_subj":"$KV.secrets.db"}`)); err != nil {
					t.Fatal(err)
				}
				wantViolation(t, errs, subj)
			}
			if _, err := js.OrderedConsumer(tctx, "KV_secrets", jetstream.OrderedConsumerConfig{}); err == nil {
				t.Fatal("watched the secrets stream")
			}
		})
	}
	// The viewer's "$KV.>" subscription (the others may not have one)
	// sees writes to other buckets, never the secrets bucket's.
	nc, _ := rawAs(t, url, authDir, bus.UserViewer)
	sub, err := nc.SubscribeSync("$KV.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := api.Secrets.Create(ctx, &schemas.Secret{ObjectMeta: schemas.ObjectMeta{Name: "later"}}); err != nil {
		t.Fatal(err)
	}
	if err := api.ConfigMaps.Create(ctx, &schemas.ConfigMap{ObjectMeta: schemas.ObjectMeta{Name: "later"}}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("waiting for the configmap's write: %v", err)
		}
		if strings.HasPrefix(m.Subject, "$KV.secrets.") {
			t.Fatalf("viewer received %s", m.Subject)
		}
		if m.Subject == "$KV.configmaps.later" {
			break
		}
	}
	if s, err := api.Secrets.Get(ctx, "db"); err != nil || string(s.Data["p"]) != plaintext {
		t.Fatalf("secret after the others' attempts: %+v, %v", s, err)
	}
}

// A Secret and a ConfigMap as large as validation allows are stored.
func TestLargestConfigStored(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	big := bytes.Repeat([]byte{0xa5}, schemas.MaxConfigSize)
	ann := map[string]string{"a": strings.Repeat("x", 250<<10)}
	s := &schemas.Secret{ObjectMeta: schemas.ObjectMeta{Name: "big", Annotations: ann}, Data: map[string][]byte{"k": big}}
	if errs := s.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := c.Secrets.Create(ctx, s); err != nil {
		t.Fatalf("1 MiB secret: %v", err)
	}
	if got, err := c.Secrets.Get(ctx, "big"); err != nil || !bytes.Equal(got.Data["k"], big) {
		t.Fatalf("read back: %v", err)
	}
	cm := &schemas.ConfigMap{ObjectMeta: schemas.ObjectMeta{Name: "big", Annotations: ann}, BinaryData: map[string][]byte{"k": big}}
	if err := c.ConfigMaps.Create(ctx, cm); err != nil {
		t.Fatalf("1 MiB configmap: %v", err)
	}
}

// The apiserver's compactor removes the secrets bucket's delete markers
// (Helm deletes a release Secret per upgrade beyond its history).
func TestSecretsCompacted(t *testing.T) {
	ns, authDir := bustest.SecureServer(t)
	api := bustest.ConnAs(t, ns.ClientURL(), authDir, bus.UserAPIServer, false)
	ctx := context.Background()
	for i := range 5 {
		s := &schemas.Secret{ObjectMeta: schemas.ObjectMeta{Name: "s" + string(rune('a'+i))}}
		if err := api.Secrets.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := api.Secrets.Delete(ctx, s.Name, s.ResourceVersion); err != nil {
			t.Fatal(err)
		}
	}
	comp := bus.NewCompactor(api, 200*time.Millisecond, bustest.Logger(t))
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- comp.Run(cctx) }()
	defer func() { stop(); <-done }()
	js, _ := jetstream.New(api.NATS())
	bustest.Eventually(t, 30*time.Second, func() error {
		st, err := js.Stream(ctx, "KV_secrets")
		if err != nil {
			return err
		}
		if n := st.CachedInfo().State.Msgs; n != 0 {
			return errors.New("delete markers left")
		}
		return nil
	})
}

package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	apiopenapi "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/options"
	basecompatibility "k8s.io/component-base/compatibility"
	openapicommon "k8s.io/kube-openapi/pkg/common"
	openapiutil "k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// The alternative the issue asks to measure: k8s.io/apiserver's generic
// server (its filters, discovery, /version, the endpoint installer and its
// serializers) with one resource, core/v1 pods, kept in a NATS KV bucket
// of an embedded JetStream server, as MiniKu keeps its objects. Bearer
// token authentication and an always-allow authorizer stand for MiniKu's
// one token. Only get and list are served: enough to measure the machinery
// every request goes through, not a storage.Interface with watch.

// podStore is rest.Storage for pods over a KV bucket: key
// <namespace>.<name>, value the pod's JSON.
type podStore struct{ kv jetstream.KeyValue }

var (
	_ rest.Storage              = (*podStore)(nil)
	_ rest.Getter               = (*podStore)(nil)
	_ rest.Lister               = (*podStore)(nil)
	_ rest.Scoper               = (*podStore)(nil)
	_ rest.SingularNameProvider = (*podStore)(nil)
)

func (p *podStore) New() runtime.Object     { return &corev1.Pod{} }
func (p *podStore) NewList() runtime.Object { return &corev1.PodList{} }
func (p *podStore) Destroy()                {}
func (p *podStore) NamespaceScoped() bool   { return true }
func (p *podStore) GetSingularName() string { return "pod" }
func (p *podStore) ConvertToTable(ctx context.Context, obj runtime.Object, opts runtime.Object) (*metav1.Table, error) {
	return rest.NewDefaultTableConvertor(corev1.Resource("pods")).ConvertToTable(ctx, obj, opts)
}

func (p *podStore) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	ns, _ := genericapirequest.NamespaceFrom(ctx)
	e, err := p.kv.Get(ctx, ns+"."+name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
	}
	if err != nil {
		return nil, err
	}
	return decodePod(e)
}

func decodePod(e jetstream.KeyValueEntry) (*corev1.Pod, error) {
	var pod corev1.Pod
	if err := json.Unmarshal(e.Value(), &pod); err != nil {
		return nil, err
	}
	pod.ResourceVersion = fmt.Sprint(e.Revision())
	return &pod, nil
}

func (p *podStore) List(ctx context.Context, _ *metainternalversion.ListOptions) (runtime.Object, error) {
	ns, _ := genericapirequest.NamespaceFrom(ctx)
	pattern := ">"
	if ns != "" {
		pattern = ns + ".*"
	}
	keys, err := p.kv.ListKeysFiltered(ctx, pattern)
	if err != nil {
		return nil, err
	}
	list := &corev1.PodList{}
	for k := range keys.Keys() {
		e, err := p.kv.Get(ctx, k)
		if err != nil {
			continue // deleted since listed
		}
		pod, err := decodePod(e)
		if err != nil {
			return nil, err
		}
		list.Items = append(list.Items, *pod)
	}
	return list, nil
}

// benchPod is the object both servers are asked for: one container, a
// few labels, as `miniku up`'s seed API stores its pods.
func benchPod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: "default", Labels: map[string]string{"app": "bench"}, CreationTimestamp: metav1.Now()},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "bench", Image: "busybox",
			Command: []string{"/bin/sh", "-c", "while true; do sleep 1; done"}}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
}

// serve runs the generic server on addr (HTTPS, a self-signed certificate
// in dir) until ctx ends.
func serve(ctx context.Context, addr, dir, token string) error {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(dir, "nats"), NoSigs: true})
	if err != nil {
		return err
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "pods", History: 1})
	if err != nil {
		return err
	}
	data, _ := json.Marshal(benchPod())
	if _, err := kv.Put(ctx, "default.bench", data); err != nil {
		return err
	}

	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return err
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(scheme)

	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	secure := options.NewSecureServingOptions().WithLoopback()
	secure.BindAddress = net.ParseIP(host)
	fmt.Sscan(port, &secure.BindPort)
	secure.ServerCert.CertDirectory = filepath.Join(dir, "certs")
	if err := secure.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
		return err
	}
	cfg := genericapiserver.NewConfig(codecs)
	cfg.EffectiveVersion = basecompatibility.NewEffectiveVersionFromString("1.33.0", "", "")
	if err := secure.ApplyTo(&cfg.SecureServing, &cfg.LoopbackClientConfig); err != nil {
		return err
	}
	want := []byte(token)
	cfg.Authentication.Authenticator = bearertoken.New(authenticator.TokenFunc(func(_ context.Context, tok string) (*authenticator.Response, bool, error) {
		if subtle.ConstantTimeCompare([]byte(tok), want) != 1 {
			return nil, false, nil
		}
		return &authenticator.Response{User: &user.DefaultInfo{Name: "admin", Groups: []string{user.SystemPrivilegedGroup}}}, true, nil
	}))
	cfg.Authorization.Authorizer = authorizerfactory.NewAlwaysAllowAuthorizer()
	// Server-side apply needs an OpenAPI model of every served type; the
	// generated ones live in k8s.io/kubernetes, which is not importable as
	// a module, so the pod is an object of any fields here (kube-apiserver
	// would carry the full generated schema: more memory, not less).
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(func(openapicommon.ReferenceCallback) map[string]openapicommon.OpenAPIDefinition {
		anyObject := openapicommon.OpenAPIDefinition{Schema: spec.Schema{
			SchemaProps:      spec.SchemaProps{Type: []string{"object"}},
			VendorExtensible: spec.VendorExtensible{Extensions: spec.Extensions{"x-kubernetes-preserve-unknown-fields": true}},
		}}
		return map[string]openapicommon.OpenAPIDefinition{
			openapiutil.GetCanonicalTypeName(&corev1.Pod{}):     anyObject,
			openapiutil.GetCanonicalTypeName(&corev1.PodList{}): anyObject,
		}
	}, apiopenapi.NewDefinitionNamer(scheme))
	srv, err := cfg.Complete(nil).New("k8sapiserver-bench", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	group := genericapiserver.NewDefaultAPIGroupInfo("", scheme, metav1.ParameterCodec, codecs)
	group.VersionedResourcesStorageMap["v1"] = map[string]rest.Storage{"pods": &podStore{kv: kv}}
	if err := srv.InstallLegacyAPIGroup("/api", &group); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "k8sapiserver-bench: serving on https://"+addr)
	return srv.PrepareRun().RunWithContext(ctx)
}

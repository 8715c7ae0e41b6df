package kube

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// maxBody is kube-apiserver's limit on a request body (3 MiB); NATS' own
// 1 MiB payload limit is the tighter one for what is stored.
const maxBody = 3 << 20

// readBody reads the request body, refusing one over the limit (413) and
// turning YAML into JSON.
func readBody(r *http.Request) ([]byte, string, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, "", badRequest("read body: %v", err)
	}
	if len(data) > maxBody {
		return nil, "", apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d bytes", maxBody))
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "" {
		ct = "application/json"
	}
	return data, ct, nil
}

// decodeObject decodes body (JSON or YAML) into obj. Unknown and
// duplicate fields are errors with fieldValidation=Strict and warnings
// otherwise (fieldValidation=Ignore: neither), as kube-apiserver does.
func decodeObject(w http.ResponseWriter, r *http.Request, data []byte, ct string, obj runtime.Object) error {
	switch ct {
	case "application/json", "application/merge-patch+json", "application/json-patch+json", "application/strategic-merge-patch+json":
	case "application/yaml", "application/x-yaml", "text/yaml":
		j, err := yaml.YAMLToJSON(data)
		if err != nil {
			return badRequest("invalid YAML: %v", err)
		}
		data = j
	case "application/vnd.kubernetes.protobuf":
		// kubectl sends built-in kinds as protobuf; the rest of the
		// handler reads JSON, so it is turned into that.
		pobj, err := protoObject(data, obj)
		if err != nil {
			return badRequest("invalid protobuf body: %v", err)
		}
		if data, err = json.Marshal(pobj); err != nil {
			return err
		}
	default:
		return unsupportedMedia("the body's content type %q is not served: send application/json or application/yaml", ct)
	}
	strict, err := kjson.UnmarshalStrict(data, obj)
	if err != nil {
		return badRequest("invalid body: %v", err)
	}
	if len(strict) == 0 {
		return nil
	}
	switch r.URL.Query().Get("fieldValidation") {
	case "Strict":
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = "strict decoding error: " + e.Error()
		}
		return badRequest("%s", strings.Join(msgs, ", "))
	case "Ignore":
		return nil
	}
	for _, e := range strict {
		w.Header().Add("Warning", fmt.Sprintf(`299 - %q`, e.Error()))
	}
	return nil
}

// wireScheme holds the API groups MiniKu serves, for decoding protobuf
// bodies. Not client-go's scheme: that registers every group Kubernetes
// has, which linked ~45 API groups' code into the binary, and an idle
// process had most of it mapped (RSS).
var wireScheme = sync.OnceValue(func() *runtime.Scheme {
	s := runtime.NewScheme()
	b := runtime.NewSchemeBuilder(corev1.AddToScheme, appsv1.AddToScheme, autoscalingv1.AddToScheme, policyv1.AddToScheme)
	if err := b.AddToScheme(s); err != nil {
		panic(fmt.Sprintf("kube: wire scheme: %v", err)) // a programming error: the groups are fixed
	}
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return s
})

var protoSerializer = sync.OnceValue(func() *protobuf.Serializer {
	return protobuf.NewSerializer(wireScheme(), wireScheme())
})

// protoObject decodes a Kubernetes protobuf envelope into a new object of
// into's type.
func protoObject(data []byte, into runtime.Object) (runtime.Object, error) {
	fresh := into.DeepCopyObject()
	out, _, err := protoSerializer().Decode(data, nil, fresh)
	return out, err
}

// setGVK stamps the wire type's apiVersion and kind, which the k8s.io/api
// structs leave to the serializer.
func setGVK(obj runtime.Object, gvk schema.GroupVersionKind) {
	obj.GetObjectKind().SetGroupVersionKind(gvk)
}

// checkAccept refuses a client that takes only what MiniKu does not
// write (protobuf, CBOR): 406, as kube-apiserver does for an unknown
// type. A client that also takes JSON gets JSON.
func checkAccept(r *http.Request) error {
	acc := r.Header.Get("Accept")
	if acc == "" {
		return nil
	}
	for _, part := range strings.Split(acc, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json", "*/*", "application/*", "application/yaml", "application/json;stream=watch":
			return nil
		}
	}
	return apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schema.GroupResource{}, "", "only application/json is served", 0, false)
}

// wantsTable says whether the client asked for a metav1.Table (kubectl
// get), and includeObject.
func wantsTable(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != "application/json" {
			continue
		}
		if params["as"] == "Table" && params["g"] == "meta.k8s.io" {
			return true
		}
		return false // JSON preferred before any Table
	}
	return false
}

// objectMeta is the wire object's metadata.
func objectMeta(obj runtime.Object) (metav1.Object, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, fmt.Errorf("object without metadata: %w", err)
	}
	return m, nil
}

// toMap and fromMap convert a wire object to and from its JSON map, for
// the generic edits (status and scale subresources, binding).
func toMap(obj runtime.Object) (map[string]any, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(data, &m)
}

func fromMap(m map[string]any, obj runtime.Object) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, obj)
}

// unsupportedMedia is a 415 UnsupportedMediaType Status.
func unsupportedMedia(format string, args ...any) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure,
		Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf(format, args...)}}
}

func fromMapAny(m map[string]any, v any) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

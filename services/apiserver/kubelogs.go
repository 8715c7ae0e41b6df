package apiserver

import (
	"context"
	"net/http"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/miniku/miniku/services/apiserver/kube"
)

var podsResource = schema.GroupResource{Resource: "pods"}

// kubePodLogs serves pods/<name>/log with the seed's log machinery (the
// pod's kubelet streams it over NATS), its Kubernetes options mapped:
// follow, timestamps, tailLines; container is accepted when it names the
// pod's one container. The rest is refused by name rather than ignored.
func (s *Server) kubePodLogs() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := kube.NameFrom(r.Context())
		nq := url.Values{}
		for k, vs := range r.URL.Query() {
			switch k {
			case "follow", "timestamps":
				nq[k] = vs
			case "tailLines":
				nq["tail"] = vs
			case "container", "pretty", "insecureSkipTLSVerifyBackend":
			default:
				kube.WriteError(w, r, podsResource, name, apierrors.NewBadRequest("pods/log: the option "+k+" is not supported by MiniKu yet"))
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
		defer cancel()
		if c := r.URL.Query().Get("container"); c != "" {
			p, err := s.conn.Pods.Get(ctx, name)
			if err != nil {
				kube.WriteError(w, r, podsResource, name, err)
				return
			}
			if p.ContainerName != "" && c != p.ContainerName {
				kube.WriteError(w, r, podsResource, name, apierrors.NewBadRequest("container "+c+" is not valid for pod "+name))
				return
			}
		}
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = nq.Encode()
		if _, _, err := s.podLogs(ctx, w, r2, name); err != nil {
			kube.WriteError(w, r, podsResource, name, kubeErr(err))
		}
	})
}

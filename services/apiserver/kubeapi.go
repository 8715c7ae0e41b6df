package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas/kinds"
	"github.com/miniku/miniku/services/apiserver/kube"
)

// kindsNamespace is the Namespace declaration, whose create rules the
// built-in namespaces go through.
func kindsNamespace() (kinds.Kind, bool) { return kinds.ByResource("namespaces") }

func (s *Server) newKube() *kube.Handler {
	h := kube.New(kube.Config{
		Store:         s.newKubeStore(),
		Log:           s.log,
		OpenAPI:       s.cfg.OpenAPI,
		Build:         s.cfg.Build,
		StreamContext: s.streamContext,
		Now:           func() time.Time { return s.now() },
		Timeout:       s.timeout,
		Streams:       map[string]http.Handler{"log": s.kubePodLogs(), "exec": s.kubePodExec()},
	})
	// The handler's cache of encoded objects lets go of a deleted
	// object's, whoever deleted it.
	forgetDeleted(h, "pods", s.pods)
	forgetDeleted(h, "replicasets", s.rss)
	forgetDeleted(h, "nodes", s.nodes)
	forgetDeleted(h, "namespaces", s.namespaces)
	forgetDeleted(h, "configmaps", s.configMaps)
	forgetDeleted(h, "serviceaccounts", s.serviceAccounts)
	if s.secrets != nil {
		forgetDeleted(h, "secrets", s.secrets)
	}
	return h
}

func forgetDeleted[T any, P bus.Object[T]](h *kube.Handler, resource string, inf *bus.Informer[T, P]) {
	inf.AddEventHandler(bus.HandlerFuncs[P]{Delete: func(old P) {
		h.Forget(resource, old.GetMeta().Name)
	}})
}

// ensureNamespacesRetry retries ensureNamespaces while the store comes
// up (JetStream may still be electing leaders right after a start).
func (s *Server) ensureNamespacesRetry(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, namespaceRetry)
	defer cancel()
	for {
		err := s.ensureNamespaces(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("apiserver: built-in namespaces: %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

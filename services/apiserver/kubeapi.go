package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/miniku/miniku/schemas/kinds"
	"github.com/miniku/miniku/services/apiserver/kube"
)

// kindsNamespace is the Namespace declaration, whose create rules the
// built-in namespaces go through.
func kindsNamespace() (kinds.Kind, bool) { return kinds.ByResource("namespaces") }

func (s *Server) newKube() *kube.Handler {
	return kube.New(kube.Config{
		Store:         s.newKubeStore(),
		Log:           s.log,
		OpenAPI:       s.cfg.OpenAPI,
		Build:         s.cfg.Build,
		StreamContext: s.streamContext,
		Now:           func() time.Time { return s.now() },
		Timeout:       s.timeout,
		Streams:       map[string]http.Handler{"log": s.kubePodLogs(), "exec": s.kubePodExec()},
	})
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

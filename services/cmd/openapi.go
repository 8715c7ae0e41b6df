package cmd

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/miniku/miniku/schemas/kinds"
	"github.com/miniku/miniku/services/apiserver/kube/openapi"
)

// kubeOpenAPI serves /openapi/v2 and /openapi/v3 for every declared kind.
// The REST handler refuses unknown fields under ?fieldValidation=Strict,
// so the documents say so, as kube-apiserver's do: kubectl then leaves the
// check to the server instead of fetching the v2 schemas to do it itself.
func kubeOpenAPI(log *slog.Logger) (http.Handler, error) {
	h, err := openapi.New(openapi.Config{Resources: openapi.FromKinds(kinds.All()), FieldValidation: true, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return h, nil
}

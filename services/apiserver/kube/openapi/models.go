package openapi

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
)

// TypeConverter is the structured-merge-diff view of the resources'
// schemas, which server-side apply merges with and tracks field
// ownership by: the same openapi-gen models the documents are made of
// (their list-type and map-key markers say how lists merge), each kind
// found by its x-kubernetes-group-version-kind, as kube-apiserver builds
// its own.
func TypeConverter(resources []Resource) (managedfields.TypeConverter, error) {
	seen := map[schema.GroupVersion]bool{}
	var gvList []schema.GroupVersion
	for _, r := range resources {
		if gv := r.GVK.GroupVersion(); !seen[gv] {
			seen[gv] = true
			gvList = append(gvList, gv)
		}
	}
	gvks := gvksOf(resources, gvList)
	names := make([]string, 0, len(gvks))
	for name := range gvks {
		names = append(names, name)
	}
	sort.Strings(names)
	d := &docs{gvks: gvks}
	models, err := builder3.BuildOpenAPIDefinitionsForResources(&common.OpenAPIV3Config{
		GetDefinitions:    GetOpenAPIDefinitions,
		GetDefinitionName: d.definitionName,
	}, names...)
	if err != nil {
		return nil, fmt.Errorf("openapi: models for server-side apply: %w", err)
	}
	tc, err := managedfields.NewTypeConverter(models, false)
	if err != nil {
		return nil, fmt.Errorf("openapi: type converter: %w", err)
	}
	return tc, nil
}

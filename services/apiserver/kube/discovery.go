package kube

import (
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/miniku/miniku/schemas/kinds"
)

// groupVersions is every served group/version, sorted as kinds.All.
func groupVersions() []schema.GroupVersion {
	seen := map[schema.GroupVersion]bool{}
	var out []schema.GroupVersion
	for _, k := range kinds.All() {
		gv := k.Info().GroupVersion
		if !seen[gv] {
			seen[gv] = true
			out = append(out, gv)
		}
	}
	return out
}

func (h *Handler) serveAPIVersions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, &metav1.APIVersions{
		TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
		Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
			{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host},
		},
	})
}

func (h *Handler) serveAPIGroups(w http.ResponseWriter) {
	list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{}}
	byGroup := map[string]int{}
	for _, gv := range h.disc.groups {
		if gv.Group == "" {
			continue
		}
		v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
		i, ok := byGroup[gv.Group]
		if !ok {
			byGroup[gv.Group] = len(list.Groups)
			list.Groups = append(list.Groups, metav1.APIGroup{Name: gv.Group, PreferredVersion: v})
			i = len(list.Groups) - 1
		}
		list.Groups[i].Versions = append(list.Groups[i].Versions, v)
	}
	writeJSON(w, http.StatusOK, list)
}

// resourceList is /api/v1 or /apis/<g>/<v>; ok false when nothing is
// served there.
func resourceList(gv schema.GroupVersion) (*metav1.APIResourceList, bool) {
	list := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: gv.String(), APIResources: []metav1.APIResource{}}
	found := false
	for _, k := range kinds.All() {
		in := k.Info()
		if in.GroupVersion != gv {
			continue
		}
		found = true
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: in.Resource, SingularName: in.Singular, Namespaced: in.Namespaced, Kind: in.Kind,
			Verbs: in.Verbs, ShortNames: in.ShortNames, Categories: in.Categories,
		})
		for _, sub := range in.Subresources {
			list.APIResources = append(list.APIResources, subresource(in, sub))
		}
	}
	return list, found
}

// subresource is the discovery entry of <resource>/<sub>, with the verbs
// and kind kube-apiserver lists for it.
func subresource(in *kinds.Info, sub string) metav1.APIResource {
	res := metav1.APIResource{Name: in.Resource + "/" + sub, Namespaced: in.Namespaced, Kind: in.Kind}
	switch sub {
	case "status":
		res.Verbs = []string{"get", "patch", "update"}
	case "scale":
		res.Group, res.Version, res.Kind = "autoscaling", "v1", "Scale"
		res.Verbs = []string{"get", "patch", "update"}
	case "binding":
		res.Kind = "Binding"
		res.Verbs = []string{"create"}
	case "eviction":
		res.Group, res.Version, res.Kind = "policy", "v1", "Eviction"
		res.Verbs = []string{"create"}
	case "log":
		res.Kind = "Pod"
		res.Verbs = []string{"get"}
	case "exec":
		res.Kind = "PodExecOptions"
		res.Verbs = []string{"create", "get"}
	default:
		res.Verbs = []string{"get"}
	}
	return res
}

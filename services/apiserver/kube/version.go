package kube

import (
	"net/http"
	"runtime"

	"k8s.io/apimachinery/pkg/version"
)

// kubeMinor is the Kubernetes minor version MiniKu's API follows: the
// kubectl dispatcher on the test machines runs the bundled kubectl of the
// server's minor, and client-go v0.33+ behaviour (streaming lists) is
// what the handler serves.
const (
	kubeMajor = "1"
	kubeMinor = "33"
)

func (h *Handler) serveVersion(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, &version.Info{
		Major:        kubeMajor,
		Minor:        kubeMinor,
		GitVersion:   "v" + kubeMajor + "." + kubeMinor + ".0-miniku." + h.cfg.Build,
		GitCommit:    h.cfg.Commit,
		GitTreeState: "clean",
		GoVersion:    runtime.Version(),
		Compiler:     runtime.Compiler,
		Platform:     runtime.GOOS + "/" + runtime.GOARCH,
	})
}

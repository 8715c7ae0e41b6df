package kubelet

import (
	"strings"

	"github.com/miniku/miniku/schemas"
)

// mergeEnv returns the image's environment with the pod's variables
// applied: a pod variable replaces the image's of the same name in place,
// new ones follow. Duplicates must not reach the container, since which
// copy a program sees (libc's getenv takes the first) is not "the pod's".
func mergeEnv(image []string, pod []schemas.EnvVar) []string {
	out := append([]string{}, image...)
	index := make(map[string]int, len(out))
	for i, e := range out {
		name, _, _ := strings.Cut(e, "=")
		index[name] = i
	}
	for _, e := range pod {
		kv := e.Name + "=" + e.Value
		if i, ok := index[e.Name]; ok {
			out[i] = kv
			continue
		}
		index[e.Name] = len(out)
		out = append(out, kv)
	}
	return out
}

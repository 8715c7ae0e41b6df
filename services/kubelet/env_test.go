package kubelet

import (
	"slices"
	"testing"

	"github.com/miniku/miniku/schemas"
)

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "A=image", "B=1"},
		[]schemas.EnvVar{{Name: "A", Value: "pod"}, {Name: "C", Value: "x=y"}, {Name: "C", Value: "last"}})
	want := []string{"PATH=/bin", "A=pod", "B=1", "C=last"}
	if !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
	if got := mergeEnv(nil, nil); len(got) != 0 {
		t.Errorf("mergeEnv(nil, nil) = %q", got)
	}
}

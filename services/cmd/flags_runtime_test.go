//go:build linux

package cmd

import (
	"flag"
	"strings"
	"testing"

	mkrt "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/services/kubelet"
)

func TestRuntimeFlags(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		memory string
		want   mkrt.Config
		err    string
	}{
		{want: mkrt.Config{PodMaxPids: mkrt.DefaultPodMaxPids}},
		{args: []string{"--pod-max-pids", "-1", "--system-reserved", "memory=1Gi,pid=2000"},
			want: mkrt.Config{PodMaxPids: -1, SystemReservedMemory: 1 << 30, SystemReservedPids: 2000}},
		{args: []string{"--pod-max-pids", "100"}, memory: "64Mi",
			want: mkrt.Config{PodMaxPids: 100, NodeMemoryBytes: 64 << 20}},
		{args: []string{"--pod-max-pids", "0"}, err: "--pod-max-pids"},
		{args: []string{"--system-reserved", "cpu=1"}, err: `unknown resource "cpu"`},
		{args: []string{"--system-reserved", "memory"}, err: "not resource=quantity"},
		{args: []string{"--system-reserved", "pid=many"}, err: "pid"},
		{args: []string{"--system-reserved", "memory=-1Gi"}, err: "memory"},
	} {
		fs := flag.NewFlagSet("kubelet", flag.ContinueOnError)
		rf := runtimeFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		got, err := rf.config(kubelet.NodeInfo{Memory: tc.memory})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error with %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

//go:build linux

package cmd

import (
	"flag"
	"fmt"
	"strings"

	mkrt "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/kubelet"
)

// kubeletRuntimeFlags are the limits of a kubelet's node-level cgroup and
// its pods' default pids limit, named as the kubelet's (on `up`, applied to
// every in-process kubelet).
type kubeletRuntimeFlags struct {
	podMaxPids *int64
	reserved   *string
}

func runtimeFlags(fs *flag.FlagSet) kubeletRuntimeFlags {
	return kubeletRuntimeFlags{
		podMaxPids: fs.Int64("pod-max-pids", mkrt.DefaultPodMaxPids, "pids limit of a pod that sets none (-1: none, only the node's limit on all pods together)"),
		reserved: fs.String("system-reserved", "", "what all pods together leave to the host, e.g. memory=1Gi,pid=2000 "+
			"(default memory: the larger of 256Mi and 10% of the host's, unless --memory sets the pods' memory; pid: the larger of 1024 and 15% of the host's pid capacity)"),
	}
}

// config is the runtime's Config; with --memory the pods together get that
// much, else the host's memory less the reserve.
func (f kubeletRuntimeFlags) config(info kubelet.NodeInfo) (mkrt.Config, error) {
	cfg := mkrt.Config{PodMaxPids: *f.podMaxPids}
	if cfg.PodMaxPids == 0 || cfg.PodMaxPids < -1 {
		return mkrt.Config{}, fmt.Errorf("--pod-max-pids %d: must be positive, or -1 for none", cfg.PodMaxPids)
	}
	if info.Memory != "" {
		mem, err := schemas.ParseMemory(info.Memory)
		if err != nil {
			return mkrt.Config{}, fmt.Errorf("--memory: %w", err)
		}
		cfg.NodeMemoryBytes = mem
	}
	if strings.TrimSpace(*f.reserved) == "" {
		return cfg, nil
	}
	for kv := range strings.SplitSeq(*f.reserved, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		var err error
		switch {
		case !ok:
			err = fmt.Errorf("%q is not resource=quantity", kv)
		case k == "memory":
			if cfg.SystemReservedMemory, err = schemas.ParseMemory(v); err != nil || cfg.SystemReservedMemory <= 0 {
				err = fmt.Errorf("memory %q: must be a positive quantity such as 1Gi", v)
			}
		case k == "pid":
			if _, serr := fmt.Sscan(v, &cfg.SystemReservedPids); serr != nil || cfg.SystemReservedPids <= 0 {
				err = fmt.Errorf("pid %q: must be a positive count", v)
			}
		default:
			err = fmt.Errorf("unknown resource %q: memory and pid can be reserved", k)
		}
		if err != nil {
			return mkrt.Config{}, fmt.Errorf("--system-reserved: %w", err)
		}
	}
	return cfg, nil
}

package kubelet

import (
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

func TestPodQoS(t *testing.T) {
	for _, tc := range []struct {
		r    schemas.ResourceList
		want QoSClass
	}{
		{schemas.ResourceList{}, BestEffort},
		{schemas.ResourceList{Pids: 10, EphemeralStorage: "1Gi"}, BestEffort},
		{schemas.ResourceList{Memory: "64Mi"}, Burstable},
		{schemas.ResourceList{CPU: "100m"}, Burstable},
		{schemas.ResourceList{CPU: "100m", Memory: "64Mi"}, Guaranteed},
	} {
		if got := PodQoS(&schemas.PodSpec{Resources: tc.r}); got != tc.want {
			t.Errorf("PodQoS(%+v) = %v, want %v", tc.r, got, tc.want)
		}
	}
}

func TestDecideEviction(t *testing.T) {
	const mi = 1 << 20
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	cfg := EvictionConfig{MemoryAvailable: 100 * mi, NodefsAvailablePercent: 10,
		ImageGCHighPercent: 85, ImageGCLowPercent: 80, PressureTransition: time.Minute}
	calm := NodeStats{MemoryAvailable: 1000 * mi, MemoryKnown: true, FSCapacity: 1000 * mi, FSAvailable: 500 * mi}
	lowMem := calm
	lowMem.MemoryAvailable = 50 * mi
	lowDisk := calm
	lowDisk.FSAvailable = 50 * mi // 5 %: pressure, and 95 % used: image GC
	gcOnly := calm
	gcOnly.FSAvailable = 120 * mi // 88 % used: image GC, no pressure

	guaranteedBig := PodStats{Name: "g", QoS: Guaranteed, MemoryUsage: 500 * mi, MemoryRequest: 512 * mi, DiskUsage: 300 * mi}
	burstableOver := PodStats{Name: "b", QoS: Burstable, MemoryUsage: 200 * mi, MemoryRequest: 64 * mi, DiskUsage: 10 * mi}
	bestEffortSmall := PodStats{Name: "be", QoS: BestEffort, MemoryUsage: 10 * mi, DiskUsage: 1 * mi}
	bestEffortBig := PodStats{Name: "be2", QoS: BestEffort, MemoryUsage: 40 * mi, DiskUsage: 20 * mi}
	overLimit := PodStats{Name: "full", QoS: BestEffort, DiskUsage: 20 * mi, DiskLimit: 10 * mi}

	type want struct {
		evict     []string
		resources []string
		gc        int64
		mem, disk string
	}
	for _, tc := range []struct {
		name      string
		node      NodeStats
		pods      []PodStats
		reclaimed bool
		want      want
	}{
		{"no pressure", calm, []PodStats{guaranteedBig, bestEffortSmall}, false,
			want{mem: "False", disk: "False"}},
		{"memory: BestEffort before a Burstable further over its request and a bigger Guaranteed", lowMem,
			[]PodStats{guaranteedBig, burstableOver, bestEffortSmall}, false,
			want{evict: []string{"be"}, resources: []string{"memory"}, mem: "True", disk: "False"}},
		{"memory: the larger of two BestEffort", lowMem, []PodStats{bestEffortSmall, bestEffortBig, guaranteedBig}, false,
			want{evict: []string{"be2"}, resources: []string{"memory"}, mem: "True", disk: "False"}},
		{"memory: Burstable over its request before Guaranteed", lowMem, []PodStats{guaranteedBig, burstableOver}, false,
			want{evict: []string{"b"}, resources: []string{"memory"}, mem: "True", disk: "False"}},
		{"memory: only Guaranteed left", lowMem, []PodStats{guaranteedBig}, false,
			want{evict: []string{"g"}, resources: []string{"memory"}, mem: "True", disk: "False"}},
		{"memory pressure unknown when not measured", NodeStats{FSCapacity: 1000 * mi, FSAvailable: 500 * mi}, []PodStats{bestEffortSmall}, false,
			want{mem: "False", disk: "False"}},
		{"ephemeral-storage limit exceeded on a calm node", calm, []PodStats{overLimit, bestEffortSmall}, false,
			want{evict: []string{"full"}, resources: []string{"ephemeral-storage"}, mem: "False", disk: "False"}},
		{"disk pressure asks for image GC first", lowDisk, []PodStats{guaranteedBig, bestEffortBig}, false,
			want{gc: 950*mi - 800*mi, mem: "False", disk: "True"}},
		{"disk pressure after GC evicts BestEffort by disk use", lowDisk, []PodStats{guaranteedBig, bestEffortSmall, bestEffortBig}, true,
			want{evict: []string{"be2"}, resources: []string{"ephemeral-storage"}, mem: "False", disk: "True"}},
		{"image GC above the high threshold without pressure", gcOnly, []PodStats{bestEffortBig}, false,
			want{gc: 880*mi - 800*mi, mem: "False", disk: "False"}},
		{"over-limit pod and a pressure eviction together", lowMem, []PodStats{overLimit, bestEffortBig, guaranteedBig}, false,
			want{evict: []string{"full", "be2"}, resources: []string{"ephemeral-storage", "memory"}, mem: "True", disk: "False"}},
		{"pressure with no pods evicts nothing", lowMem, nil, false,
			want{mem: "True", disk: "False"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decideEviction(tc.node, tc.pods, cfg, EvictionState{}, tc.reclaimed, now)
			var names, res []string
			for _, e := range d.Evict {
				names, res = append(names, e.Pod), append(res, e.Resource)
				if e.Message == "" {
					t.Errorf("eviction of %s has no message", e.Pod)
				}
			}
			if !equalStrings(names, tc.want.evict) || !equalStrings(res, tc.want.resources) {
				t.Errorf("evict %v for %v, want %v for %v", names, res, tc.want.evict, tc.want.resources)
			}
			if d.ImageGCBytes != tc.want.gc {
				t.Errorf("image GC %d bytes, want %d", d.ImageGCBytes, tc.want.gc)
			}
			n := schemas.Node{Conditions: d.Conditions}
			mem, _ := n.Condition(schemas.NodeMemoryPressure)
			disk, _ := n.Condition(schemas.NodeDiskPressure)
			if mem.Status != tc.want.mem || disk.Status != tc.want.disk {
				t.Errorf("MemoryPressure %s DiskPressure %s, want %s %s", mem.Status, disk.Status, tc.want.mem, tc.want.disk)
			}
		})
	}
}

func TestDecideEvictionMessages(t *testing.T) {
	now := time.Now()
	d := decideEviction(NodeStats{FSCapacity: 100, FSAvailable: 5}, []PodStats{{Name: "p"}},
		EvictionConfig{NodefsAvailablePercent: 10}, EvictionState{}, false, now)
	if len(d.Evict) != 1 || d.Evict[0].Message != "The node was low on resource: ephemeral-storage." {
		t.Errorf("evict %+v, want the Kubernetes message", d.Evict)
	}
	n := schemas.Node{Conditions: d.Conditions}
	if c, _ := n.Condition(schemas.NodeDiskPressure); c.Reason != "KubeletHasDiskPressure" {
		t.Errorf("DiskPressure reason %q", c.Reason)
	}
}

// TestDecideEvictionTransition: a condition stays True for the transition
// period after pressure was last seen, then clears, and its transition time
// moves only when its status changes.
func TestDecideEvictionTransition(t *testing.T) {
	cfg := EvictionConfig{NodefsAvailablePercent: 10, PressureTransition: time.Minute}
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	full := NodeStats{FSCapacity: 100, FSAvailable: 5}
	free := NodeStats{FSCapacity: 100, FSAvailable: 50}
	disk := func(d EvictionDecision) schemas.NodeCondition {
		c, _ := (&schemas.Node{Conditions: d.Conditions}).Condition(schemas.NodeDiskPressure)
		return c
	}
	var st EvictionState
	steps := []struct {
		at     time.Duration
		node   NodeStats
		status string
		since  time.Duration
	}{
		{0, free, "False", 0},
		{10 * time.Second, full, "True", 10 * time.Second},
		{20 * time.Second, full, "True", 10 * time.Second},
		{30 * time.Second, free, "True", 10 * time.Second}, // within the transition period
		{79 * time.Second, free, "True", 10 * time.Second},
		{80 * time.Second, free, "False", 80 * time.Second},
		{90 * time.Second, free, "False", 80 * time.Second},
	}
	for _, s := range steps {
		d := decideEviction(s.node, nil, cfg, st, false, t0.Add(s.at))
		st = d.State
		c := disk(d)
		if c.Status != s.status || !c.LastTransitionTime.Equal(t0.Add(s.since)) {
			t.Errorf("at %v: DiskPressure %s since %v, want %s since %v", s.at, c.Status, c.LastTransitionTime.Sub(t0), s.status, s.since)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

package kinds

import (
	"encoding/json"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
)

// FuzzFromKube feeds arbitrary JSON, decoded into each kind's wire type
// as the REST handler decodes a body, to FromKube and the rules after
// it. None may panic; what FromKube accepts must convert back.
func FuzzFromKube(f *testing.F) {
	for _, p := range testPods() {
		k, _ := PodToKube(p)
		b, _ := json.Marshal(k)
		f.Add(b)
	}
	for _, r := range testReplicaSets() {
		k, _ := ReplicaSetToKube(r)
		b, _ := json.Marshal(k)
		f.Add(b)
	}
	f.Add([]byte(`{"metadata":{"name":"n","namespace":"x","resourceVersion":"-1","ownerReferences":[{"controller":false}]},"spec":{"taints":[{}],"finalizers":["a"]}}`))
	f.Add([]byte(`{"spec":{"containers":[{"args":["a"],"resources":{"requests":{"cpu":"1"}},"ports":[{"hostPort":1}]}],"replicas":-5,"selector":{}}}`))
	f.Add([]byte(`{"status":{"phase":"Running","containerStatuses":[{"state":{"terminated":{"exitCode":3}}}],"conditions":[{"type":"Ready"}],"capacity":{"cpu":"1e300"}}}`))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range All() {
			in := k.NewKube()
			if json.Unmarshal(data, in) != nil {
				continue
			}
			stored, errs := k.FromKube(in)
			if stored == nil {
				t.Fatalf("%s: FromKube returned no object", k.Info().Resource)
			}
			k.PrepareForCreate(stored, now)
			_ = k.Validate(stored)
			old := k.NewStored()
			k.PrepareForUpdate(stored, old)
			_ = k.ValidateUpdate(stored, old)
			if _, err := k.Table([]runtime.Object{in}, now); err != nil {
				t.Fatalf("%s: table: %v", k.Info().Resource, err)
			}
			if len(errs) > 0 {
				continue
			}
			if _, err := k.ToKube(stored); err != nil {
				t.Fatalf("%s: accepted %s but cannot show it: %v", k.Info().Resource, data, err)
			}
		}
	})
}

package kinds

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/miniku/miniku/schemas"
)

func tp(t time.Time) *time.Time { return &t }

func testPods() map[string]*schemas.Pod {
	code0, code1 := 0, 1
	meta := func(name string) schemas.ObjectMeta {
		return schemas.ObjectMeta{Name: name, UID: "u-" + name, ResourceVersion: 9, CreatedAt: t0, Generation: 1,
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}}
	}
	spec := schemas.PodSpec{Image: "busybox:1.36", Command: []string{"sleep", "1d"}, Env: []schemas.EnvVar{{Name: "A", Value: "1"}}}
	return map[string]*schemas.Pod{
		"pending": {ObjectMeta: meta("p1"), PodSpec: spec, Status: schemas.PodPending},
		"running with everything": {ObjectMeta: meta("p2"), ContainerName: "main", Owner: "web", OwnerUID: "rs-uid",
			PodSpec: schemas.PodSpec{Image: "nginx", Resources: schemas.ResourceList{CPU: "500m", Memory: "64Mi", EphemeralStorage: "1Gi", Pids: 100},
				NodeSelector: map[string]string{"disk": "ssd"}, RestartPolicy: schemas.RestartOnFailure, HostNetwork: true,
				TerminationGracePeriodSeconds: ptrTo(int64(5)), Ports: []schemas.ContainerPort{{Name: "http", ContainerPort: 80}, {ContainerPort: 53, Protocol: "UDP"}}},
			NodeName: "node-1", Status: schemas.PodRunning, ContainerID: "abc", StartedAt: tp(t0.Add(time.Second))},
		"crash loop": {ObjectMeta: meta("p3"), PodSpec: spec, NodeName: "node-1", Status: schemas.PodPending, Reason: "CrashLoopBackOff",
			Message: "back-off 10s", ExitCode: &code1, RestartCount: 3, StartedAt: tp(t0), FinishedAt: tp(t0.Add(time.Minute))},
		"succeeded": {ObjectMeta: meta("p4"), PodSpec: spec, NodeName: "node-1", Status: schemas.PodSucceeded, Reason: "Completed",
			ExitCode: &code0, ContainerID: "c", StartedAt: tp(t0), FinishedAt: tp(t0.Add(time.Minute))},
		"failed OOM": {ObjectMeta: meta("p5"), PodSpec: spec, NodeName: "node-1", Status: schemas.PodFailed, Reason: "OOMKilled",
			ExitCode: &code1, StartedAt: tp(t0), FinishedAt: tp(t0.Add(time.Minute))},
		"unschedulable": {ObjectMeta: meta("p8"), PodSpec: spec, Status: schemas.PodPending, Reason: "Unschedulable",
			Message: "0/2 nodes are available: 2 Insufficient cpu."},
		"node lost": {ObjectMeta: meta("p9"), PodSpec: spec, NodeName: "node-1", Status: schemas.PodFailed, Reason: "NodeLost",
			Message: "node node-1 stopped responding", StartedAt: tp(t0), FinishedAt: tp(t0.Add(time.Minute))},
		"terminating": {ObjectMeta: func() schemas.ObjectMeta {
			m := meta("p6")
			m.DeletionTimestamp, m.DeletionGracePeriodSeconds = tp(t0.Add(time.Hour)), ptrTo(int64(30))
			return m
		}(), PodSpec: spec, NodeName: "node-1", Status: schemas.PodRunning, StartedAt: tp(t0)},
		"other owner refs": {ObjectMeta: schemas.ObjectMeta{Name: "p7", CreatedAt: t0, Generation: 1, Finalizers: []string{"example.com/f"},
			OwnerReferences: []schemas.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "c", UID: "cu"}},
			ManagedFields:   []byte(`[{"manager":"kubectl","operation":"Apply","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{}}}]`)},
			PodSpec: spec, Status: schemas.PodPending},
	}
}

func TestPodRoundTrip(t *testing.T) {
	for name, p := range testPods() {
		t.Run(name, func(t *testing.T) {
			back := roundTrip(t, Pod, p).(*schemas.Pod)
			if p.ManagedFields != nil { // compare as JSON values, not bytes
				k1, _ := PodToKube(p)
				k2, _ := PodToKube(back)
				if !reflect.DeepEqual(k1.ManagedFields, k2.ManagedFields) {
					t.Errorf("managedFields changed: %s -> %s", p.ManagedFields, back.ManagedFields)
				}
				back.ManagedFields = p.ManagedFields
			}
			if !reflect.DeepEqual(back, p) {
				t.Errorf("round trip changed the pod:\n got %+v\nwant %+v", back, p)
			}
		})
	}
}

func TestPodToKube(t *testing.T) {
	pods := testPods()
	k, err := PodToKube(pods["running with everything"])
	if err != nil {
		t.Fatal(err)
	}
	if k.Namespace != "default" || len(k.OwnerReferences) != 1 || k.OwnerReferences[0].Kind != "ReplicaSet" || !*k.OwnerReferences[0].Controller {
		t.Errorf("metadata %+v", k.ObjectMeta)
	}
	c := k.Spec.Containers[0]
	if c.Name != "main" || c.ImagePullPolicy != corev1.PullAlways || c.Ports[0].HostPort != 80 {
		t.Errorf("container %+v", c)
	}
	if k.Status.QOSClass != corev1.PodQOSGuaranteed || k.Spec.DNSPolicy != corev1.DNSClusterFirst || k.Spec.SchedulerName != "default-scheduler" {
		t.Errorf("qos/defaults: %s %s %s", k.Status.QOSClass, k.Spec.DNSPolicy, k.Spec.SchedulerName)
	}
	conds := map[corev1.PodConditionType]corev1.ConditionStatus{}
	for _, c := range k.Status.Conditions {
		conds[c.Type] = c.Status
	}
	if want := (map[corev1.PodConditionType]corev1.ConditionStatus{"PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True"}); !reflect.DeepEqual(conds, want) {
		t.Errorf("conditions %v", conds)
	}
	cs := k.Status.ContainerStatuses[0]
	if cs.State.Running == nil || cs.ContainerID != "miniku://abc" || !cs.Ready || k.Status.StartTime == nil {
		t.Errorf("container status %+v", cs)
	}
	k, _ = PodToKube(pods["crash loop"])
	if w := k.Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "CrashLoopBackOff" ||
		k.Status.ContainerStatuses[0].LastTerminationState.Terminated.ExitCode != 1 {
		t.Errorf("crash loop status %+v", k.Status.ContainerStatuses[0])
	}
	k, _ = PodToKube(pods["unschedulable"])
	if c := k.Status.Conditions[0]; c.Type != corev1.PodScheduled || c.Status != corev1.ConditionFalse || c.Reason != "Unschedulable" || c.Message == "" {
		t.Errorf("unschedulable condition %+v", c)
	}
	k, _ = PodToKube(pods["node lost"])
	if k.Status.Reason != "NodeLost" || k.Status.ContainerStatuses[0].State.Terminated.Reason != "ContainerStatusUnknown" {
		t.Errorf("node lost status %+v", k.Status)
	}
	k, _ = PodToKube(pods["pending"])
	if len(k.Status.ContainerStatuses) != 0 || k.Status.QOSClass != corev1.PodQOSBestEffort || len(k.Status.Conditions) != 1 {
		t.Errorf("pending status %+v", k.Status)
	}
}

func TestPodFromKubeRefuses(t *testing.T) {
	base := func() *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	}
	q := resource.MustParse
	for _, tc := range []struct {
		name string
		mod  func(*corev1.Pod)
		want string
	}{
		{"ok", func(*corev1.Pod) {}, ""},
		{"probe", func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe = &corev1.Probe{} }, "spec.containers[0].livenessProbe"},
		{"two containers", func(p *corev1.Pod) { p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0]) }, "spec.containers[1]"},
		{"no container", func(p *corev1.Pod) { p.Spec.Containers = nil }, "spec.containers"},
		{"args alone", func(p *corev1.Pod) { p.Spec.Containers[0].Args = []string{"x"} }, "spec.containers[0].args"},
		{"valueFrom", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{}}}
		}, "spec.containers[0].env[0].valueFrom"},
		{"volumes", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{{Name: "v"}} }, "spec.volumes"},
		{"init", func(p *corev1.Pod) { p.Spec.InitContainers = []corev1.Container{{}} }, "spec.initContainers"},
		{"affinity", func(p *corev1.Pod) { p.Spec.Affinity = &corev1.Affinity{} }, "spec.affinity"},
		{"dns policy", func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSNone }, "spec.dnsPolicy"},
		{"pull policy Never", func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever }, "spec.containers[0].imagePullPolicy"},
		{"Always carried to a tagged image", func(p *corev1.Pod) {
			p.Spec.Containers[0].Image, p.Spec.Containers[0].ImagePullPolicy = "busybox:1.36", corev1.PullAlways
		}, ""},
		{"IfNotPresent carried to an untagged image", func(p *corev1.Pod) {
			p.Spec.Containers[0].Image, p.Spec.Containers[0].ImagePullPolicy = "busybox", corev1.PullIfNotPresent
		}, ""},
		{"gpu", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": q("1")}
		}, "spec.containers[0].resources.limits[nvidia.com/gpu]"},
		{"request below limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{"cpu": q("1")}, Requests: corev1.ResourceList{"cpu": q("500m")}}
		}, "spec.containers[0].resources.requests[cpu]"},
		{"request alone", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{"memory": q("1Gi")}
		}, "spec.containers[0].resources.requests[memory]"},
		{"hostPort", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
		}, "spec.containers[0].ports[0].hostPort"},
		{"namespace", func(p *corev1.Pod) { p.Namespace = "kube-system" }, "metadata.namespace"},
		{"owner ref controller false", func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "c", UID: "u", Controller: ptrTo(false)}}
		}, ""},
		{"replicaset ref without blockOwnerDeletion", func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "r", UID: "u", Controller: ptrTo(true)}}
		}, "metadata.ownerReferences[0].blockOwnerDeletion"},
		{"toleration", func(p *corev1.Pod) { p.Spec.Tolerations = []corev1.Toleration{{Key: "x"}} }, "spec.tolerations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.mod(p)
			_, errs := PodFromKube(p)
			if got := errPaths(errs); got != tc.want {
				t.Errorf("errors at %q, want %q (%v)", got, tc.want, errs.ToAggregate())
			}
			for _, e := range errs {
				if strings.Contains(tc.want, "requests") && !strings.Contains(e.Error(), "requests as limits") {
					t.Errorf("request error does not say why: %v", e)
				}
			}
		})
	}
	// Exponents become the suffixed form MiniKu stores.
	p0 := base()
	p0.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"cpu": q("5e-1"), "memory": q("128e6")}
	if got, errs := PodFromKube(p0); len(errs) > 0 || got.Resources.CPU != "500m" || got.Resources.Memory != "128M" || len(ValidatePod(got)) > 0 {
		t.Errorf("exponent quantities: %+v %v %v", got.Resources, errs, ValidatePod(got))
	}
	// command + args are Kubernetes' command followed by args.
	p := base()
	p.Spec.Containers[0].Command, p.Spec.Containers[0].Args = []string{"sh", "-c"}, []string{"echo hi"}
	got, errs := PodFromKube(p)
	if len(errs) > 0 || !reflect.DeepEqual(got.Command, []string{"sh", "-c", "echo hi"}) {
		t.Errorf("command+args: %v %v", got.Command, errs)
	}
	if !strings.Contains(notSupported(specPath.Child("x"), "").Error(), "not supported by MiniKu yet") {
		t.Error("notSupported message")
	}
}

func TestPodStrategy(t *testing.T) {
	p := testPods()["crash loop"].DeepCopy()
	p.UID = "client"
	PreparePodForCreate(p, t0)
	if p.UID == "client" || p.Status != schemas.PodPending || p.ExitCode != nil || p.RestartCount != 0 || p.Reason != "" || p.Generation != 0 || !p.CreatedAt.Equal(t0) {
		t.Errorf("PrepareForCreate left %+v", p)
	}
	if errs := ValidatePod(p); len(errs) > 0 {
		t.Errorf("Validate: %v", errs)
	}
	old := p.DeepCopy()
	old.Status, old.RestartCount, old.ResourceVersion = schemas.PodRunning, 2, 5
	upd := p.DeepCopy()
	upd.UID, upd.Labels = "", map[string]string{"new": "label"}
	PreparePodForUpdate(upd, old)
	if upd.Status != schemas.PodRunning || upd.RestartCount != 2 || upd.UID != old.UID || upd.Generation != 0 {
		t.Errorf("PrepareForUpdate: %+v", upd)
	}
	if errs := ValidatePodUpdate(upd, old); len(errs) > 0 {
		t.Errorf("label update refused: %v", errs)
	}
	upd.Image = "nginx"
	PreparePodForUpdate(upd, old)
	if errs := ValidatePodUpdate(upd, old); errPaths(errs) != "spec" || upd.Generation != 2 {
		t.Errorf("image update: %v (generation %d)", errs, upd.Generation)
	}
	bad := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "x"}, PodSpec: schemas.PodSpec{Image: "Bad Image", Resources: schemas.ResourceList{CPU: "lots"}}}
	if got := errPaths(ValidatePod(bad)); got != "spec.containers[0].image spec.containers[0].resources.limits.cpu" {
		t.Errorf("paths %q", got)
	}
}

func TestPodTable(t *testing.T) {
	now := t0.Add(2 * time.Hour)
	pods := testPods()
	for name, want := range map[string][]any{
		"pending":                 {"p1", "0/1", "Pending", "0", "120m", "<none>", "<none>", "<none>", "<none>"},
		"running with everything": {"p2", "1/1", "Running", "0", "120m", "<none>", "node-1", "<none>", "<none>"},
		"crash loop":              {"p3", "0/1", "CrashLoopBackOff", "3 (119m ago)", "120m", "<none>", "node-1", "<none>", "<none>"},
		"succeeded":               {"p4", "0/1", "Completed", "0", "120m", "<none>", "node-1", "<none>", "<none>"},
		"failed OOM":              {"p5", "0/1", "OOMKilled", "0", "120m", "<none>", "node-1", "<none>", "<none>"},
		"unschedulable":           {"p8", "0/1", "Pending", "0", "120m", "<none>", "<none>", "<none>", "<none>"},
		"node lost":               {"p9", "0/1", "ContainerStatusUnknown", "0", "120m", "<none>", "node-1", "<none>", "<none>"},
		"terminating":             {"p6", "1/1", "Terminating", "0", "120m", "<none>", "node-1", "<none>", "<none>"},
	} {
		k, err := PodToKube(pods[name])
		if err != nil {
			t.Fatal(err)
		}
		tab, err := Pod.Table([]runtime.Object{k}, now)
		if err != nil {
			t.Fatal(err)
		}
		if got := tab.Rows[0].Cells; !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
	if _, err := Pod.Table([]runtime.Object{&corev1.Node{}}, now); err == nil {
		t.Error("table of a node as pods")
	}
}

// A pod stored with the defaults spelled out (as the seed API lets a
// client write them) survives a read-modify-write through the
// Kubernetes view: same spec, no generation bump, and a status write
// (which skips PrepareForUpdate) passes ValidatePodUpdate.
func TestPodDefaultsSpelledOut(t *testing.T) {
	old := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "p", UID: "u", CreatedAt: t0}, ContainerName: "p",
		PodSpec: schemas.PodSpec{Image: "busybox", RestartPolicy: schemas.RestartAlways, TerminationGracePeriodSeconds: ptrTo(int64(30)),
			Ports: []schemas.ContainerPort{{ContainerPort: 80, Protocol: "TCP"}}, Env: []schemas.EnvVar{}},
		NodeName: "n", Status: schemas.PodRunning}
	back := roundTrip(t, Pod, old).(*schemas.Pod)
	if errs := ValidatePodUpdate(back, old); len(errs) > 0 {
		t.Errorf("status-style write refused: %v", errs)
	}
	PreparePodForUpdate(back, old)
	if errs := ValidatePodUpdate(back, old); len(errs) > 0 || back.Generation != 0 || !reflect.DeepEqual(back.PodSpec, old.PodSpec) || back.ContainerName != "p" {
		t.Errorf("update: %v, generation %d, spec %+v", errs, back.Generation, back.PodSpec)
	}
	rs := &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "r", UID: "u", CreatedAt: t0}, DesiredCount: 1,
		Selector: map[string]string{"a": "b"}, Template: schemas.PodTemplate{Name: "r", Labels: map[string]string{"a": "b"}, PodSpec: old.PodSpec}}
	rback := roundTrip(t, ReplicaSet, rs).(*schemas.ReplicaSet)
	PrepareReplicaSetForUpdate(rback, rs)
	if rback.Generation != 0 || !reflect.DeepEqual(rback.Template, rs.Template) {
		t.Errorf("replicaset update: generation %d, template %+v", rback.Generation, rback.Template)
	}
}

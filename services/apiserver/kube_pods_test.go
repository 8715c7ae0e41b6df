package apiserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

func kpod(name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "busybox", Command: []string{"sleep", "3600"},
		}}},
	}
}

func statusOf(t *testing.T, err error) metav1.Status {
	t.Helper()
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a Status", err, err)
	}
	return se.Status()
}

func TestKubePodCRUD(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	pods := e.client.CoreV1().Pods("default")

	created, err := pods.Create(ctx, kpod("web", map[string]string{"app": "web"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Namespace != "default" || created.UID == "" || created.ResourceVersion == "" || created.Status.Phase != corev1.PodPending {
		t.Errorf("created pod: ns %q uid %q rv %q phase %q", created.Namespace, created.UID, created.ResourceVersion, created.Status.Phase)
	}
	gen, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-", Labels: map[string]string{"app": "gen"}},
		Spec: kpod("", nil).Spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(gen.Name, "gen-") || len(gen.Name) != len("gen-")+5 {
		t.Errorf("generated name %q", gen.Name)
	}
	if _, err := pods.Create(ctx, kpod("web", nil), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create: %v, want AlreadyExists", err)
	}
	if _, err := pods.Create(ctx, kpod("dry", nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("dry run create: %v", err)
	}
	if _, err := pods.Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run pod was stored: get says %v", err)
	}

	got, err := pods.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != created.UID || got.Spec.Containers[0].Image != "busybox" {
		t.Errorf("get: %+v", got.ObjectMeta)
	}

	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "web" || list.ResourceVersion == "" {
		t.Errorf("label-selected list: %d items, rv %q", len(list.Items), list.ResourceVersion)
	}
	list, err = pods.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + gen.Name})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != gen.Name {
		t.Errorf("field-selected list: %v", names(list.Items))
	}
	list, err = pods.List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("status.phase=Running: %v, %v", names(list.Items), err)
	}
	if _, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "spec.restartPolicy=Always"}); !apierrors.IsBadRequest(err) {
		t.Errorf("unsupported field selector: %v, want BadRequest", err)
	}
	all, err := e.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil || len(all.Items) != 2 {
		t.Errorf("cluster-wide list: %v, %v", names(all.Items), err)
	}

	// Update with the conflict retry client-go programs use, while
	// another writer bumps the pod in between once.
	bumped := false
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := pods.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !bumped {
			bumped = true
			other := p.DeepCopy()
			other.Labels["other"] = "x"
			if _, err := pods.Update(ctx, other, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
		p.Labels["tier"] = "front"
		_, err = pods.Update(ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err = pods.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["tier"] != "front" || got.Labels["other"] != "x" {
		t.Errorf("labels after retried update: %v", got.Labels)
	}
	stale := got.DeepCopy()
	stale.ResourceVersion = created.ResourceVersion
	_, err = pods.Update(ctx, stale, metav1.UpdateOptions{})
	if st := statusOf(t, err); st.Code != http.StatusConflict || st.Reason != metav1.StatusReasonConflict {
		t.Errorf("stale update: %d %s: %s", st.Code, st.Reason, st.Message)
	}

	// A field MiniKu does not implement: 422 naming its path.
	bad := kpod("probe", nil)
	bad.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
	_, err = pods.Create(ctx, bad, metav1.CreateOptions{})
	st := statusOf(t, err)
	if st.Code != http.StatusUnprocessableEntity || st.Details == nil || len(st.Details.Causes) == 0 ||
		st.Details.Causes[0].Field != "spec.containers[0].livenessProbe" {
		t.Errorf("livenessProbe: %d %+v", st.Code, st.Details)
	}

	// Namespaces: objects live in default only for now.
	_, err = e.client.CoreV1().Pods("nope").List(ctx, metav1.ListOptions{})
	if st := statusOf(t, err); st.Code != 404 || !strings.Contains(st.Message, `namespaces "nope" not found`) {
		t.Errorf("list in a missing namespace: %d %q", st.Code, st.Message)
	}
	sys, err := e.client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil || len(sys.Items) != 0 {
		t.Errorf("list in kube-system: %v, %v", names(sys.Items), err)
	}
	_, err = e.client.CoreV1().Pods("kube-system").Create(ctx, kpod("sys", nil), metav1.CreateOptions{})
	if st := statusOf(t, err); st.Code != http.StatusForbidden || !strings.Contains(st.Message, "only in namespace \"default\"") {
		t.Errorf("create in kube-system: %d %q", st.Code, st.Message)
	}

	// Delete: preconditions, then grace 0 removes it at once (unbound).
	wrong := types.UID("not-it")
	err = pods.Delete(ctx, "web", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &wrong}})
	if !apierrors.IsConflict(err) {
		t.Errorf("delete with a wrong uid: %v, want Conflict", err)
	}
	zero := int64(0)
	if err := pods.Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v", err)
	}
	if err := pods.DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{LabelSelector: "app=gen"}); err != nil {
		t.Fatal(err)
	}
	left, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil || len(left.Items) != 0 {
		t.Errorf("after deletecollection: %v, %v", names(left.Items), err)
	}
}

func names(pods []corev1.Pod) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = p.Name
	}
	return out
}

func TestKubeListPages(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	pods := e.client.CoreV1().Pods("default")
	for i := range 5 {
		if _, err := pods.Create(ctx, kpod(fmt.Sprintf("p%d", i), nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	opts := metav1.ListOptions{Limit: 2}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("more pages than pods")
		}
		l, err := pods.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) > 2 {
			t.Fatalf("page of %d items with limit 2", len(l.Items))
		}
		seen = append(seen, names(l.Items)...)
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	if strings.Join(seen, ",") != "p0,p1,p2,p3,p4" {
		t.Errorf("pages: %v", seen)
	}
	_, err := pods.List(ctx, metav1.ListOptions{Continue: "garbage"})
	if !apierrors.IsBadRequest(err) {
		t.Errorf("bad continue: %v", err)
	}
}

// One store, two views: an object written through either API is read
// through the other.
func TestKubeAndSeedSeeEachOther(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	resp, err := http.Post(e.url+"/pods", "application/json",
		strings.NewReader(`{"name":"seeded","image":"busybox","command":["sleep","1"],"labels":{"via":"seed"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("seed create: %d", resp.StatusCode)
	}
	p, err := e.client.CoreV1().Pods("default").Get(ctx, "seeded", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Labels["via"] != "seed" || p.Spec.Containers[0].Image != "busybox" {
		t.Errorf("seed pod through the Kubernetes API: %+v", p)
	}
	if _, err := e.client.CoreV1().Pods("default").Create(ctx, kpod("kubed", map[string]string{"via": "kube"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(e.url + "/pods/kubed")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sp schemas.Pod
	if err := json.NewDecoder(resp.Body).Decode(&sp); err != nil || resp.StatusCode != 200 {
		t.Fatalf("seed get: %d %v", resp.StatusCode, err)
	}
	if sp.Labels["via"] != "kube" || sp.Image != "busybox" {
		t.Errorf("kube pod through the seed API: %+v", sp)
	}
}

func TestKubeWatch(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	pods := e.client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, kpod("before", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	l, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion, LabelSelector: "app=w"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	p, err := pods.Create(ctx, kpod("w1", map[string]string{"app": "w"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Create(ctx, kpod("other", map[string]string{"app": "x"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.Labels["more"] = "1"
	if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	if err := pods.Delete(ctx, "w1", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed after %v", got)
			}
			pp, ok := ev.Object.(*corev1.Pod)
			if !ok {
				t.Fatalf("event object %T", ev.Object)
			}
			got = append(got, string(ev.Type)+" "+pp.Name)
		case <-ctx.Done():
			t.Fatalf("events so far: %v", got)
		}
	}
	if strings.Join(got, ",") != "ADDED w1,MODIFIED w1,DELETED w1" {
		t.Errorf("events: %v", got)
	}
}

// A watch from a revision older than the cache's history is a 410 as
// client-go expects it: an ERROR event with an Expired Status.
func TestKubeWatchExpired(t *testing.T) {
	e := startKubeAfter(t, func(c *bus.Conn) {
		ctx := kctx(t)
		for i := range 3 {
			if err := c.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprintf("old%d", i), UID: "u"},
				PodSpec: schemas.PodSpec{Image: "busybox"}}); err != nil {
				t.Fatal(err)
			}
		}
	})
	ctx := kctx(t)
	w, err := e.client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{ResourceVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case ev := <-w.ResultChan():
		st, ok := ev.Object.(*metav1.Status)
		if ev.Type != watch.Error || !ok || st.Code != http.StatusGone || st.Reason != metav1.StatusReasonExpired {
			t.Errorf("event %s %+v, want ERROR with a 410 Expired Status", ev.Type, ev.Object)
		}
	case <-ctx.Done():
		t.Fatal("no event")
	}
}

// client-go ≥ 0.35 lists by streaming watch: the informer syncs only
// when the server ends the initial events with the annotated bookmark
// (else it waits ~10 s and falls back to a list).
func TestKubeInformerStreamingList(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	for i := range 3 {
		if _, err := e.client.CoreV1().Pods("default").Create(ctx, kpod(fmt.Sprintf("s%d", i), nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var adds atomic.Int64
	var watchListUsed atomic.Bool
	f := informers.NewSharedInformerFactory(e.client, 0)
	inf := f.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(any) { adds.Add(1) }}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	start := time.Now()
	f.Start(stop)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), inf.HasSynced) {
		t.Fatalf("informer not synced within 2 s (the streaming list's end bookmark missing?)")
	}
	t.Logf("informer synced in %v", time.Since(start))
	if n := len(inf.GetStore().List()); n != 3 {
		t.Errorf("informer has %d pods, want 3", n)
	}
	if _, err := e.client.CoreV1().Pods("default").Create(ctx, kpod("late", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for adds.Load() < 4 {
		if ctx.Err() != nil {
			t.Fatalf("informer saw %d adds, want 4", adds.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = watchListUsed.Load()

	// The raw stream: ADDED per object, then the annotated BOOKMARK.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url+
		"/api/v1/namespaces/default/pods?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d events, want 4 ADDED and a BOOKMARK: %s", len(lines), data)
	}
	var last metav1.WatchEvent
	if err := json.Unmarshal([]byte(lines[4]), &last); err != nil {
		t.Fatal(err)
	}
	var bm metav1.PartialObjectMetadata
	_ = json.Unmarshal(last.Object.Raw, &bm)
	if last.Type != "BOOKMARK" || bm.Annotations[metav1.InitialEventsAnnotationKey] != "true" || bm.ResourceVersion == "" {
		t.Errorf("last event %s %s, want the initial-events-end BOOKMARK", last.Type, last.Object.Raw)
	}
}

func TestKubeSubresources(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	pods := e.client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, kpod("b", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := pods.Get(ctx, "b", metav1.GetOptions{})
	if err != nil || p.Spec.NodeName != "node-x" {
		t.Fatalf("after binding: node %q, %v", p.Spec.NodeName, err)
	}
	err = pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-y"}}, metav1.CreateOptions{})
	if !apierrors.IsConflict(err) {
		t.Errorf("second binding: %v, want Conflict", err)
	}
	// Eviction deletes: the pod's node does not exist, so at once.
	if err := pods.EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after eviction: %v", err)
	}

	// Scale of a replicaset.
	rsBody := `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"fe"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"fe"}},
"template":{"metadata":{"labels":{"app":"fe"}},"spec":{"containers":[{"name":"c","image":"busybox","command":["sleep","9"]}]}}}}`
	resp, err := http.Post(e.url+"/apis/apps/v1/namespaces/default/replicasets", "application/json", strings.NewReader(rsBody))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create rs: %d %s", resp.StatusCode, body)
	}
	rss := e.client.AppsV1().ReplicaSets("default")
	sc, err := rss.GetScale(ctx, "fe", metav1.GetOptions{})
	if err != nil || sc.Spec.Replicas != 2 || sc.Status.Selector != "app=fe" {
		t.Fatalf("scale: %+v, %v", sc, err)
	}
	sc.Spec.Replicas = 5
	if _, err := rss.UpdateScale(ctx, "fe", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs, err := rss.Get(ctx, "fe", metav1.GetOptions{})
	if err != nil || *rs.Spec.Replicas != 5 {
		t.Errorf("replicas after scale: %v, %v", rs.Spec.Replicas, err)
	}
	// kubectl scale patches the subresource.
	if _, err := rss.Patch(ctx, "fe", types.MergePatchType, []byte(`{"spec":{"replicas":4}}`), metav1.PatchOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}
	if rs, err := rss.Get(ctx, "fe", metav1.GetOptions{}); err != nil || *rs.Spec.Replicas != 4 {
		t.Errorf("replicas after a scale patch: %v, %v", rs.Spec.Replicas, err)
	}
	sc.Spec.Replicas = 1 // sc's resourceVersion is stale now
	if _, err := rss.UpdateScale(ctx, "fe", sc, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("stale scale: %v, want Conflict", err)
	}
}

// The status subresource writes only the status; the main resource
// keeps the status it has (the kubelet's).
func TestKubeStatusSubresource(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	pods := e.client.CoreV1().Pods("default")
	p, err := pods.Create(ctx, kpod("st", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodFailed
	p.Labels = map[string]string{"ignored": "yes"}
	got, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodFailed || got.Labels["ignored"] != "" {
		t.Errorf("after UpdateStatus: phase %q, labels %v", got.Status.Phase, got.Labels)
	}
	got.Status.Phase = corev1.PodPending
	got.Labels = map[string]string{"kept": "yes"}
	upd, err := pods.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if upd.Status.Phase != corev1.PodFailed || upd.Labels["kept"] != "yes" {
		t.Errorf("after Update: phase %q (status must not change), labels %v", upd.Status.Phase, upd.Labels)
	}
}

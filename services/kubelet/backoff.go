package kubelet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/runtime/image"
	"github.com/miniku/miniku/schemas"
)

// Kubernetes' image pull backoff: 10 s after the first failure, doubling
// to 5 min, forgotten after twice the cap without a failure.
const (
	DefaultImagePullBackoff    = 10 * time.Second
	DefaultImagePullBackoffMax = 5 * time.Minute
)

// Waiting reasons of a Pending pod whose image cannot be pulled, as
// Kubernetes' container statuses show them.
const (
	ReasonErrImagePull     = "ErrImagePull"
	ReasonImagePullBackOff = "ImagePullBackOff"
)

// pullState is the backoff state of one pod's image: how many pulls in a
// row failed and when the last one did. Kept in memory only, as
// Kubernetes does: a restarted kubelet tries once more at once.
type pullState struct {
	uid, image string
	failures   int
	last       time.Time
	err        string // the last failure, without the ErrImagePull prefix
}

// PullFailures is the count after a pull failed at now, when prev pulls in
// a row had failed, the last at last: a failure after a quiet spell of
// b.Reset starts the count afresh.
func PullFailures(b Backoff, prev int, last, now time.Time) int {
	if prev <= 0 || now.Sub(last) >= b.Reset {
		return 1
	}
	return prev + 1
}

// PullDelay is the wait after failures pulls in a row failed: Base after
// the first, doubling up to Max. Unlike the crash-loop backoff there is no
// free retry: every failed pull waits.
func PullDelay(b Backoff, failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	d := b.Base
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// NextPullRetry is when a pod's image may be pulled again, given its state.
func NextPullRetry(b Backoff, st pullState) time.Time {
	return st.last.Add(PullDelay(b, st.failures))
}

// pullBackoffs holds the pull backoff of each pod, by pod name.
type pullBackoffs struct {
	mu sync.Mutex
	m  map[string]pullState
}

// get returns the state of pod's image, if its last pull failed.
func (p *pullBackoffs) get(pod *schemas.Pod) (pullState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.m[pod.Name]
	if !ok || st.uid != pod.UID || st.image != pod.Image {
		return pullState{}, false
	}
	return st, true
}

func (p *pullBackoffs) failed(b Backoff, pod *schemas.Pod, now time.Time, msg string) pullState {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]pullState{}
	}
	prev, ok := p.m[pod.Name]
	if !ok || prev.uid != pod.UID || prev.image != pod.Image {
		prev = pullState{}
	}
	st := pullState{uid: pod.UID, image: pod.Image, last: now, err: msg,
		failures: PullFailures(b, prev.failures, prev.last, now)}
	p.m[pod.Name] = st
	return st
}

// forget drops the state of a pod that pulled, or is gone.
func (p *pullBackoffs) forget(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, name)
	if len(p.m) == 0 {
		p.m = nil // a map never shrinks: let a burst of failures go
	}
}

// pullMessage is the error of a failed pull without the ErrImagePull
// prefix the image store puts on every error: the reason already says it.
func pullMessage(err error) string {
	msg := err.Error()
	if errors.Is(err, image.ErrImagePull) {
		msg = strings.TrimPrefix(msg, image.ErrImagePull.Error()+": ")
	}
	return msg
}

// pullBackedOff reports whether pod's image is in backoff; if so it marks
// the pod ImagePullBackOff (once: a resync writes nothing) and requeues it
// for when the backoff ends, without pulling.
func (k *Kubelet) pullBackedOff(ctx context.Context, pod *schemas.Pod) (bool, error) {
	st, ok := k.pulls.get(pod)
	if !ok {
		return false, nil
	}
	wait := time.Until(NextPullRetry(k.pullBackoff, st))
	if wait <= 0 {
		return false, nil
	}
	msg := fmt.Sprintf("Back-off %s pulling image %q: %s", PullDelay(k.pullBackoff, st.failures), pod.Image, st.err)
	k.q.AddAfter(pod.Name, wait)
	return true, k.reportWaiting(ctx, pod, ReasonImagePullBackOff, msg)
}

// pullFailed records a failed pull of pod's image: the pod stays Pending
// with reason ErrImagePull, one Failed and one BackOff event go out (one
// per attempt, however often the pod is synced), and the pod is synced
// again at once to show ImagePullBackOff while the backoff runs.
func (k *Kubelet) pullFailed(ctx context.Context, pod *schemas.Pod, err error) error {
	msg := pullMessage(err)
	st := k.pulls.failed(k.pullBackoff, pod, time.Now(), msg)
	delay := PullDelay(k.pullBackoff, st.failures)
	k.log.Warn("image pull failed", "pod", pod.Name, "image", pod.Image, "failures", st.failures, "retryIn", delay, "err", msg)
	k.emit([]schemas.ObjectEvent{
		podEvent(pod, k.cfg.NodeName, schemas.EventWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %s", pod.Image, msg)),
		podEvent(pod, k.cfg.NodeName, schemas.EventNormal, "BackOff", fmt.Sprintf("Back-off %s pulling image %q", delay, pod.Image)),
	})
	k.q.Add(pod.Name)
	return k.reportWaiting(ctx, pod, ReasonErrImagePull, msg)
}

// reportWaiting writes a Pending pod's waiting reason and message with CAS,
// only when they change and only while the pod is still the Pending one
// bound here.
func (k *Kubelet) reportWaiting(ctx context.Context, pod *schemas.Pod, reason, msg string) error {
	change := func(cur *schemas.Pod) error {
		if cur.UID != pod.UID || cur.NodeName != k.cfg.NodeName || cur.Status != schemas.PodPending ||
			cur.DeletionTimestamp != nil || (cur.Reason == reason && cur.Message == msg) {
			return bus.ErrNoChange
		}
		cur.Reason, cur.Message = reason, msg
		return nil
	}
	cached, ok := k.pods.Get(pod.Name)
	if ok && cached.UID == pod.UID && cached.Reason == reason && cached.Message == msg {
		return nil // a resync while backing off: nothing to write, nothing to read
	}
	if !ok {
		cached = nil
	}
	// Through the node API, as every status write of a kubelet (NodeRestriction).
	updated, err := k.conn.MutatePodStatus(ctx, k.cfg.NodeName, cached, pod.Name, change)
	if errors.Is(err, bus.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("report %s of pod %s: %w", reason, pod.Name, err)
	}
	k.pods.Observe(updated)
	return nil
}

// withDefaultsFrom fills b's zero fields from base and max, then as
// withDefaults does (cap at least the base, reset after twice the cap).
func (b Backoff) withDefaultsFrom(base, max time.Duration) Backoff {
	if b.Base <= 0 {
		b.Base = base
	}
	if b.Max <= 0 {
		b.Max = max
	}
	return b.withDefaults()
}

package kubelet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/miniku/miniku/bus"
	ctr "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/schemas"
)

// Kubernetes' crash-loop backoff: 10 s doubling to 5 min, forgotten once a
// container has run for twice the cap.
const (
	DefaultRestartBackoff    = 10 * time.Second
	DefaultRestartBackoffMax = 5 * time.Minute
)

// labelCrashes records, on each container, how many times in a row the
// pod's container had crashed before this one was started. It travels with
// the container's persisted state, so a restarted kubelet continues the
// backoff where the previous one left it instead of hot-looping.
const labelCrashes = "miniku.crashes"

// Backoff is the restart delay policy.
type Backoff struct {
	Base  time.Duration // delay before the second restart in a row
	Max   time.Duration // cap
	Reset time.Duration // a container that ran this long starts the count afresh
}

func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = DefaultRestartBackoff
	}
	if b.Max <= 0 {
		b.Max = DefaultRestartBackoffMax
	}
	if b.Max < b.Base {
		b.Max = b.Base
	}
	if b.Reset <= 0 {
		b.Reset = 2 * b.Max
	}
	return b
}

// Crashes is the number of exits in a row, counting this one, of a
// container started after prev exits in a row that ran for ran.
func (b Backoff) Crashes(prev int, ran time.Duration) int {
	if ran >= b.Reset || prev < 0 {
		return 1
	}
	return prev + 1
}

// Delay is how long to wait before restarting after crashes exits in a row.
// As in Kubernetes the first restart is immediate, then Base, doubling up
// to Max.
func (b Backoff) Delay(crashes int) time.Duration {
	if crashes <= 1 {
		return 0
	}
	d := b.Base
	for i := 2; i < crashes && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// restartExited handles an exited container whose pod's restart policy
// wants it back: record the termination, wait out the backoff (the pod
// stays Running with reason CrashLoopBackOff, as in Kubernetes), then
// replace the container in place.
func (k *Kubelet) restartExited(ctx context.Context, pod *schemas.Pod, c ctr.Container) error {
	now := time.Now().UTC()
	prev, err := strconv.Atoi(c.Labels[labelCrashes])
	if err != nil {
		prev = pod.RestartCount // started by a kubelet that did not label it
	}
	finished := c.FinishedAt.UTC()
	if c.FinishedAt.IsZero() {
		// Exited while no kubelet watched: use the finish time recorded on
		// the pod for this container, or record now as it.
		finished = now
		if pod.ContainerID == c.ID && pod.FinishedAt != nil && !pod.FinishedAt.Before(c.CreatedAt) {
			finished = *pod.FinishedAt
		}
	}
	crashes := k.backoff.Crashes(prev, finished.Sub(c.CreatedAt))
	delay := k.backoff.Delay(crashes)
	var code *int
	if c.ExitKnown {
		code = &c.ExitCode
	}
	wait := finished.Add(delay).Sub(now)
	updated, changed, err := k.recordTermination(ctx, pod, c, finished, code, delay, wait > 0)
	if err != nil || updated == nil {
		return err // updated nil: the pod is gone or terminating; the next sync handles it
	}
	if wait > 0 {
		if changed {
			k.log.Info("container exited, backing off", "pod", pod.Name, "container", c.ID, "exitCode", code, "delay", delay, "restartCount", updated.RestartCount)
			k.event(pod, schemas.EventWarning, "BackOff", "Back-off restarting failed container "+containerName(pod))
		}
		k.q.AddAfter(pod.Name, wait)
		return nil
	}
	if err := k.rt.Remove(c.ID); err != nil && !errors.Is(err, ctr.ErrNotFound) {
		return fmt.Errorf("remove exited container %s of pod %s: %w", c.ID, pod.Name, err)
	}
	k.untrack(c.ID)
	k.log.Info("restarting container", "pod", pod.Name, "old", c.ID, "crashes", crashes, "restartCount", updated.RestartCount)
	return k.start(ctx, updated, crashes)
}

// restartMissing restarts a Running pod whose container vanished (host
// reboot, or a kubelet crash between removing the old container and
// starting the new one).
func (k *Kubelet) restartMissing(ctx context.Context, pod *schemas.Pod) error {
	crashes := 1
	if pod.FinishedAt != nil && pod.StartedAt != nil && !pod.FinishedAt.Before(*pod.StartedAt) {
		// The last container's exit was recorded: keep its backoff.
		crashes = k.backoff.Crashes(pod.RestartCount, pod.FinishedAt.Sub(*pod.StartedAt))
		if wait := pod.FinishedAt.Add(k.backoff.Delay(crashes)).Sub(time.Now()); wait > 0 {
			k.q.AddAfter(pod.Name, wait)
			return nil
		}
	}
	k.log.Info("container missing, restarting", "pod", pod.Name, "container", pod.ContainerID)
	return k.start(ctx, pod, crashes)
}

// recordTermination writes the exit of c onto the pod (which stays Running)
// and, when a backoff is due, reason CrashLoopBackOff. It returns nil when
// the pod is no longer ours to restart.
func (k *Kubelet) recordTermination(ctx context.Context, pod *schemas.Pod, c ctr.Container, finished time.Time, code *int, delay time.Duration, backingOff bool) (*schemas.Pod, bool, error) {
	var stale, changed bool
	updated, err := k.conn.MutatePodStatus(ctx, k.cfg.NodeName, nil, pod.Name, func(cur *schemas.Pod) error {
		if cur.UID != pod.UID || cur.NodeName != k.cfg.NodeName || cur.Status.Terminal() || cur.DeletionTimestamp != nil {
			stale = true
			return bus.ErrNoChange
		}
		reason, msg := cur.Reason, cur.Message
		if backingOff {
			reason, msg = "CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container", delay)
		}
		same := cur.Status == schemas.PodRunning && cur.ContainerID == c.ID &&
			cur.FinishedAt != nil && cur.FinishedAt.Equal(finished) &&
			equalCode(cur.ExitCode, code) && cur.Reason == reason && cur.Message == msg
		if same {
			return bus.ErrNoChange
		}
		changed = true
		if cur.Status != schemas.PodRunning {
			started := c.CreatedAt.UTC()
			cur.StartedAt = &started
		}
		cur.Status = schemas.PodRunning
		cur.ContainerID = c.ID
		cur.FinishedAt = &finished
		cur.ExitCode = code
		cur.Reason, cur.Message = reason, msg
		return nil
	})
	if errors.Is(err, bus.ErrNotFound) || errors.Is(err, bus.ErrForbidden) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("record exit of pod %s: %w", pod.Name, err)
	}
	if stale {
		k.q.Add(pod.Name)
		return nil, false, nil
	}
	if changed {
		k.pods.Observe(updated)
	}
	return updated, changed, nil
}

func equalCode(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// wantsRestart says whether the pod's restart policy brings an exited
// container back. An unknown exit code counts as a failure.
func wantsRestart(pod *schemas.Pod, c ctr.Container) bool {
	code := c.ExitCode
	if !c.ExitKnown {
		code = -1
	}
	return pod.Restart(code)
}

func containerName(pod *schemas.Pod) string {
	if pod.ContainerName != "" {
		return pod.ContainerName
	}
	return pod.Name
}

// Package fake is a container runtime that runs nothing: Start records a
// container as Running at once, Stop marks it exited. It exists only for
// hollow nodes (kubelets that exercise the real kubelet code at scale,
// see services/kubelet/hollow.go); nothing else may use it.
package fake

import (
	"context"
	"sort"
	"sync"
	"time"

	ctr "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/runtime/image"
)

// Runtime keeps containers in memory. Safe for concurrent use.
type Runtime struct {
	mu         sync.Mutex
	containers map[string]*entry
}

type entry struct {
	c    ctr.Container
	done chan struct{} // closed when the container exits
}

// New returns an empty runtime.
func New() *Runtime { return &Runtime{containers: map[string]*entry{}} }

// Start "starts" spec's container: it is Running on return.
func (r *Runtime) Start(_ context.Context, spec ctr.Spec) (ctr.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.containers[spec.ID]; ok {
		return ctr.Container{}, ctr.ErrExists
	}
	labels := make(map[string]string, len(spec.Labels))
	for k, v := range spec.Labels {
		labels[k] = v
	}
	c := ctr.Container{ID: spec.ID, Pid: 1, Labels: labels, CreatedAt: time.Now(), Status: ctr.StatusRunning}
	r.containers[spec.ID] = &entry{c: c, done: make(chan struct{})}
	return c, nil
}

// Get returns the container with id.
func (r *Runtime) Get(id string) (ctr.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.containers[id]
	if !ok {
		return ctr.Container{}, ctr.ErrNotFound
	}
	return e.c, nil
}

// List returns every container, oldest first.
func (r *Runtime) List() ([]ctr.Container, error) {
	r.mu.Lock()
	out := make([]ctr.Container, 0, len(r.containers))
	for _, e := range r.containers {
		out = append(out, e.c)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// Wait blocks until the container exits or ctx ends.
func (r *Runtime) Wait(ctx context.Context, id string) (ctr.Container, error) {
	r.mu.Lock()
	e, ok := r.containers[id]
	r.mu.Unlock()
	if !ok {
		return ctr.Container{}, ctr.ErrNotFound
	}
	select {
	case <-e.done:
		return r.Get(id)
	case <-ctx.Done():
		return ctr.Container{}, ctx.Err()
	}
}

// Stop marks the container exited with code 0, as a process that handles
// SIGTERM at once would; grace is not waited.
func (r *Runtime) Stop(_ context.Context, id string, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.containers[id]
	if !ok {
		return ctr.ErrNotFound
	}
	if e.c.Status == ctr.StatusRunning {
		e.c.Status, e.c.ExitCode, e.c.ExitKnown, e.c.FinishedAt = ctr.StatusExited, 0, true, time.Now()
		close(e.done)
	}
	return nil
}

// Remove deletes a stopped container.
func (r *Runtime) Remove(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.containers[id]
	if !ok {
		return ctr.ErrNotFound
	}
	if e.c.Status == ctr.StatusRunning {
		return ctr.ErrRunning
	}
	delete(r.containers, id)
	return nil
}

// Images "pulls" any reference instantly: the image runs "sleep" and has no
// root filesystem (the fake runtime never reads it).
type Images struct{}

// Pull returns a placeholder image for ref.
func (Images) Pull(_ context.Context, ref string) (image.Image, error) {
	return image.Image{Ref: ref, Config: image.Config{Cmd: []string{"sleep", "infinity"}}}, nil
}

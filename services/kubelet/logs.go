package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/miniku/miniku/bus"
	ctr "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/schemas"
)

// maxLogStreams bounds the log streams one kubelet serves at once; each
// holds open files and a goroutine or two.
const maxLogStreams = 64

// serveLogs answers log requests for this node's pods on
// kubelet.<node>.logs (see bus.ServeLogStream for the protocol) until the
// returned stop is called or ctx ends. stop waits for every stream to end.
// A failure to subscribe is logged, not fatal: pods run without logs.
func (k *Kubelet) serveLogs(ctx context.Context) (stop func()) {
	return serveStream(k, ctx, streamServer{
		subject: bus.KubeletLogsSubject(k.cfg.NodeName),
		queue:   "kubelet-logs",
		what:    "log",
		max:     maxLogStreams,
		busy:    fmt.Sprintf("node %s is serving %d log streams already, retry later", k.cfg.NodeName, maxLogStreams),
	}, k.streamLogs)
}

func (k *Kubelet) respondLogError(reply, code, msg string) {
	if err := bus.RespondLogError(k.conn.NATS(), reply, code, msg); err != nil {
		k.log.Warn("answer log request", "err", err)
	}
}

// streamLogs sends the log of req's pod's container to reply.
func (k *Kubelet) streamLogs(ctx context.Context, reply string, req schemas.LogRequest) {
	c, err := k.logContainer(req)
	if err != nil {
		k.respondLogError(reply, schemas.LogCodeNoContainer, err.Error())
		return
	}
	log := k.log.With("pod", req.Pod, "container", c.ID, "follow", req.Follow)
	log.Debug("log stream started")
	err = bus.ServeLogStream(ctx, k.conn.NATS(), reply, func(ctx context.Context, w io.Writer) error {
		opts := ctr.LogOptions{Follow: req.Follow, Tail: req.Tail, Timestamps: req.Timestamps}
		if req.Follow {
			// Following ends when the container exits: its log is complete.
			done := make(chan struct{})
			wctx, wcancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			defer wg.Wait()
			defer wcancel()
			if c.Status == ctr.StatusRunning {
				wg.Go(func() {
					if _, err := k.rt.Wait(wctx, c.ID); err == nil || errors.Is(err, ctr.ErrNotFound) {
						close(done)
					}
				})
			} else {
				close(done)
			}
			opts.Done = done
		}
		err := ctr.ReadLogs(ctx, c.LogPath, opts, w)
		if ctx.Err() != nil {
			return nil // the requester went away; nothing to report
		}
		if err != nil {
			return fmt.Errorf("read log of pod %s: %w", req.Pod, err)
		}
		return nil
	})
	if err != nil {
		log.Warn("log stream failed", "err", err)
		return
	}
	log.Debug("log stream ended")
}

// logContainer finds the container whose log req wants: the newest one of
// the pod as this node runs it now.
func (k *Kubelet) logContainer(req schemas.LogRequest) (ctr.Container, error) {
	pod, ok := k.pods.Get(req.Pod)
	if !ok || pod.NodeName != k.cfg.NodeName || (req.UID != "" && pod.UID != req.UID) {
		return ctr.Container{}, fmt.Errorf("pod %s is not bound to node %s", req.Pod, k.cfg.NodeName)
	}
	var best *ctr.Container
	for _, c := range k.containersOf(req.Pod) {
		if c.Labels[labelPodUID] != pod.UID {
			continue
		}
		if best == nil || c.CreatedAt.After(best.CreatedAt) {
			cc := c
			best = &cc
		}
	}
	if best == nil {
		return ctr.Container{}, fmt.Errorf("pod %s has no container on node %s yet (status %s)", req.Pod, k.cfg.NodeName, pod.Status)
	}
	return *best, nil
}

package apiserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/miniku/miniku/schemas"
)

// maxLogTail caps ?tail: the kubelet keeps that many lines in memory.
const maxLogTail = 100_000

// podLogs serves GET /pods/{name}/logs: the log of the pod's container,
// read by the pod's kubelet and streamed over NATS (bus.RequestLogs), as
// text/plain, flushed per chunk.
func (s *Server) podLogs(ctx context.Context, w http.ResponseWriter, r *http.Request, name string) (int, any, error) {
	q := r.URL.Query()
	if err := checkQuery(q, "follow", "tail", "timestamps"); err != nil {
		return 0, nil, err
	}
	follow, err := parseBoolParam(r, "follow")
	if err != nil {
		return 0, nil, err
	}
	timestamps, err := parseBoolParam(r, "timestamps")
	if err != nil {
		return 0, nil, err
	}
	tail := -1
	if q.Has("tail") {
		n, err := strconv.Atoi(q.Get("tail"))
		if err != nil || n < -1 || n > maxLogTail {
			return 0, nil, badRequest("tail: %q is not a number of lines from 0 to %d (or -1 for all)", q.Get("tail"), maxLogTail)
		}
		tail = n
	}
	pod, err := s.scheduledPod(ctx, name, "it has no logs")
	if err != nil {
		return 0, nil, err
	}

	// Not the request's store timeout: a follow lasts as long as the client.
	sctx, cancel := s.streamContext(r)
	defer cancel()
	req := schemas.LogRequest{Pod: name, UID: pod.UID, Follow: follow, Tail: tail, Timestamps: timestamps}
	stream, err := s.conn.RequestLogs(sctx, pod.NodeName, req)
	if err != nil {
		return 0, nil, logsError(pod, err)
	}
	defer stream.Close()
	sw := startStream(w, "text/plain; charset=utf-8")
	log := s.log.With("pod", name, "node", pod.NodeName, "follow", follow)
	for {
		data, err := stream.Next(sctx)
		if errors.Is(err, io.EOF) {
			return 0, streamed{}, nil
		}
		if err != nil {
			// The status is sent: all the client can see is the end.
			if sctx.Err() == nil {
				log.Warn("log stream broken", "err", err)
			}
			return 0, streamed{}, nil
		}
		if _, err := sw.Write(data); err != nil {
			log.Debug("log client gone", "err", err)
			return 0, streamed{}, nil
		}
	}
}

func logsError(pod *schemas.Pod, err error) error {
	return kubeletStreamError(pod, err, "read the logs of")
}

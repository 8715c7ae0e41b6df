package apiserver

import (
	"context"
	"errors"
	"net/http"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// kubeletStreamError maps the failure to open a stream (logs, exec) to
// pod's kubelet to an HTTP error; action says what could not be done
// ("exec in", "read the logs of").
func kubeletStreamError(pod *schemas.Pod, err error, action string) error {
	var le *bus.LogError
	switch {
	case errors.Is(err, bus.ErrNoKubelet):
		return newError(http.StatusBadGateway, "no kubelet answers for node %s (is it down?): cannot %s pod %q", pod.NodeName, action, pod.Name)
	case errors.Is(err, bus.ErrKubeletTimeout):
		return newError(http.StatusGatewayTimeout, "the kubelet of node %s did not answer in time: cannot %s pod %q", pod.NodeName, action, pod.Name)
	case errors.As(err, &le):
		switch le.Code {
		case schemas.LogCodeNoContainer, schemas.LogCodeBadRequest:
			return badRequest("%s", le.Msg)
		case schemas.LogCodeBusy:
			return newError(http.StatusServiceUnavailable, "%s", le.Msg)
		}
		return newError(http.StatusBadGateway, "kubelet of node %s: %s", pod.NodeName, le.Msg)
	}
	return err
}

// scheduledPod reads the pod a stream to its kubelet is for; a pod not
// yet on a node is a bad request, told with why ("it has no logs").
func (s *Server) scheduledPod(ctx context.Context, name, why string) (*schemas.Pod, error) {
	pod, err := getObject(ctx, s.conn.Pods, kindPod, name)
	if err != nil {
		return nil, err
	}
	if pod.NodeName == "" {
		return nil, badRequest("pod %q is not scheduled to a node yet (status %s): %s", name, pod.Status, why)
	}
	return pod, nil
}

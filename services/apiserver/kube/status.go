package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/bus"
)

// toStatus maps an error to the Status kube-apiserver would send for it.
// gr and name are the object the request was about.
func (h *Handler) toStatus(r *http.Request, gr schema.GroupResource, name string, err error) *apierrors.StatusError {
	var se apierrors.APIStatus
	var ie invalidError
	switch {
	case errors.As(err, &se):
		s := se.Status()
		return &apierrors.StatusError{ErrStatus: s}
	case errors.As(err, &ie):
		kind, n, errs := ie.Invalid()
		return apierrors.NewInvalid(schema.GroupKind{Group: gr.Group, Kind: kind}, n, errs)
	case errors.Is(err, bus.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, bus.ErrAlreadyExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, bus.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	case errors.Is(err, ErrExpired):
		return apierrors.NewResourceExpired(err.Error())
	case errors.Is(err, ErrTooLarge):
		return apierrors.NewTimeoutError(err.Error(), 1)
	case errors.Is(err, context.DeadlineExceeded):
		return apierrors.NewServiceUnavailable("state store unavailable, retry later: " + err.Error())
	}
	if r.Context().Err() == nil {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	return apierrors.NewInternalError(err)
}

// invalidError is a write a kind's rules refused (bus/registry's).
type invalidError interface {
	error
	Invalid() (kind, name string, errs field.ErrorList)
}

// invalid is a 422 naming every field path.
func invalid(gk schema.GroupKind, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(gk, name, errs)
}

func badRequest(format string, args ...any) error {
	return apierrors.NewBadRequest(fmt.Sprintf(format, args...))
}

// writeStatus sends err as a metav1.Status with its code.
func writeStatus(w http.ResponseWriter, se *apierrors.StatusError) {
	st := se.ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	if st.Status == "" {
		st.Status = metav1.StatusFailure
	}
	if st.Code == 0 {
		st.Code = http.StatusInternalServerError
	}
	if st.Details != nil && st.Details.RetryAfterSeconds > 0 {
		// As kube-apiserver: client-go waits this long before retrying.
		w.Header().Set("Retry-After", strconv.Itoa(int(st.Details.RetryAfterSeconds)))
	}
	writeJSON(w, int(st.Code), &st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		data, _ = json.Marshal(&metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Code: int32(code), Message: "encode response: " + err.Error(), Reason: metav1.StatusReasonInternalError})
	}
	writeRaw(w, code, data)
}

func writeRaw(w http.ResponseWriter, code int, data []byte) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-cache, private")
	w.WriteHeader(code)
	_, _ = w.Write(data)
	_, _ = w.Write([]byte{'\n'})
}

// WriteError sends err as the Status kube-apiserver would (for handlers
// mounted through Config.Streams).
func WriteError(w http.ResponseWriter, r *http.Request, gr schema.GroupResource, name string, err error) {
	h := &Handler{log: slogDiscard}
	writeStatus(w, h.toStatus(r, gr, name, err))
}

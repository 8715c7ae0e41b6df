package kube

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"

	"github.com/miniku/miniku/bus"
)

// maxPatchAttempts: a patch that names no resourceVersion is applied
// again to the newer object when someone wrote in between, as
// kube-apiserver does.
const maxPatchAttempts = 5

func (h *Handler) patch(ctx context.Context, w http.ResponseWriter, r *http.Request, q *request, _ bool) error {
	if err := h.checkNamed(ctx, q, q.name); err != nil {
		return err
	}
	data, ct, err := readBody(r)
	if err != nil {
		return err
	}
	opts, err := parseWriteOptions(r, types.PatchType(ct))
	if err != nil {
		return err
	}
	if ct == "application/apply-patch+yaml" || ct == "application/apply-patch+cbor" {
		return h.apply(ctx, w, q, data, ct, opts)
	}
	for attempt := 0; ; attempt++ {
		old, err := h.cfg.Store.Get(ctx, q.info.Resource, q.name)
		if err != nil {
			return err
		}
		cur, err := h.toKube(q, old)
		if err != nil {
			return err
		}
		curJSON, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		patched, err := applyPatch(ct, curJSON, data, q.kind.NewKube())
		if err != nil {
			return err
		}
		k := q.kind.NewKube()
		if err := decodeObject(w, r, patched, "application/json", k); err != nil {
			return err
		}
		if _, m, err := checkDecoded(q, k); err != nil {
			return err
		} else if m.GetName() != q.name {
			return badRequest("a patch may not change metadata.name")
		}
		if q.sub == "status" {
			if k, err = h.withStatusOf(q, old, k); err != nil {
				return err
			}
		}
		out, err := h.write(ctx, q, old, k, opts, false)
		if err == nil {
			writeJSON(w, http.StatusOK, out)
			return nil
		}
		// Retry only a conflict the patch did not ask for (it carries no
		// resourceVersion of its own, so the object's was used).
		if !apierrors.IsConflict(err) || attempt >= maxPatchAttempts || patchNamesRV(ct, data) {
			return err
		}
	}
}

// apply is server-side apply: the patch is merged into the stored object
// (or an empty one, which is then created) by field ownership, and the
// result is written through the kind's rules like any other write.
func (h *Handler) apply(ctx context.Context, w http.ResponseWriter, q *request, data []byte, ct string, opts writeOptions) error {
	patch, err := decodeApply(q, data, ct)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		old, err := h.cfg.Store.Get(ctx, q.info.Resource, q.name)
		missing := errors.Is(err, bus.ErrNotFound)
		if err != nil && !missing {
			return err
		}
		var live runtime.Object
		if missing {
			if q.elsewhere() {
				return apierrors.NewNotFound(q.gr(), q.name)
			}
			live, err = emptyFor(q)
		} else {
			live, err = h.toKube(q, old)
		}
		if err != nil {
			return err
		}
		k, err := h.applyTo(q, live, patch, opts)
		if err != nil {
			return err
		}
		var out runtime.Object
		code := http.StatusOK
		if missing {
			out, err = h.createObject(ctx, q, k, opts)
			code = http.StatusCreated
		} else {
			if q.sub == "status" {
				if k, err = h.withStatusOf(q, old, k); err != nil {
					return err
				}
			}
			out, err = h.write(ctx, q, old, k, opts, true)
		}
		if err == nil {
			writeJSON(w, code, out)
			return nil
		}
		// Someone created or wrote the object meanwhile: apply again to
		// what is there now, unless the patch named its resourceVersion.
		retry := (missing && apierrors.IsAlreadyExists(err)) || (!missing && apierrors.IsConflict(err) && patch.GetResourceVersion() == "")
		if !retry || attempt >= maxPatchAttempts {
			return err
		}
	}
}

// applyPatch applies patch (of content type ct) to the JSON of the
// current object; schema is the kind's wire type, whose struct tags
// carry the strategic merge keys.
func applyPatch(ct string, cur, patch []byte, schema runtime.Object) ([]byte, error) {
	var out []byte
	var err error
	switch ct {
	case "application/json-patch+json":
		var p jsonpatch.Patch
		if p, err = jsonpatch.DecodePatch(patch); err != nil {
			return nil, badRequest("invalid JSON patch: %v", err)
		}
		if out, err = p.Apply(cur); err != nil {
			return nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity,
				Reason: metav1.StatusReasonInvalid, Message: "the JSON patch does not apply: " + err.Error()}}
		}
	case "application/merge-patch+json":
		if out, err = jsonpatch.MergePatch(cur, patch); err != nil {
			return nil, badRequest("invalid merge patch: %v", err)
		}
	case "application/strategic-merge-patch+json":
		if !json.Valid(patch) {
			if j, yerr := yaml.YAMLToJSON(patch); yerr == nil {
				patch = j
			}
		}
		if out, err = strategicpatch.StrategicMergePatch(cur, patch, schema); err != nil {
			return nil, badRequest("invalid strategic merge patch: %v", err)
		}
	default:
		return nil, unsupportedMedia("the patch content type %q is not served: use application/json-patch+json, application/merge-patch+json or application/strategic-merge-patch+json", ct)
	}
	return out, nil
}

// patchNamesRV says whether a patch sets metadata.resourceVersion: its
// conflict is the client's precondition, not a race to retry.
func patchNamesRV(ct string, patch []byte) bool {
	if ct == "application/json-patch+json" {
		var ops []map[string]any
		if json.Unmarshal(patch, &ops) == nil {
			for _, op := range ops {
				if op["path"] == "/metadata/resourceVersion" {
					return true
				}
			}
		}
		return false
	}
	var m struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	return json.Unmarshal(patch, &m) == nil && m.Metadata.ResourceVersion != ""
}

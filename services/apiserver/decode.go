package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/miniku/miniku/schemas"
)

// maxBodyBytes keeps one request from holding much memory; objects are far
// smaller, and NATS would refuse values near its 1 MiB payload limit anyway.
const maxBodyBytes = 1 << 20

// decodeBody reads exactly one JSON (or YAML) object into v, strictly: a
// client's typo in a field name, a key given twice or a key in the wrong
// case must fail loudly rather than be silently dropped or let the last
// one win (encoding/json matches keys case-insensitively and keeps the
// last duplicate; Kubernetes refuses both the same way).
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	isYAML, err := checkContentType(r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge()
		}
		return badRequest("read request body: %v", err)
	}
	if isYAML {
		if data, err = yaml.YAMLToJSONStrict(data); err != nil {
			msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
			return badRequest("invalid YAML: %s", strings.Join(strings.Fields(msg), " "))
		}
	}
	// The standard decoder first, for its syntax errors (with offsets) and
	// to find where the one value ends.
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return decodeError(err)
	}
	// Decode stops after the first value; whatever follows would otherwise
	// be ignored, hiding a client bug such as two concatenated objects.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("request body has data after the JSON object")
	}
	strict, err := k8sjson.UnmarshalStrict(raw, v)
	if err != nil {
		return decodeError(err)
	}
	if len(strict) > 0 {
		return strictError(strict)
	}
	return nil
}

// strictError names every duplicate or unknown key, with its path.
func strictError(errs []error) error {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msg := e.Error()
		var fe k8sjson.FieldError
		if errors.As(e, &fe) {
			switch {
			case strings.HasPrefix(msg, "duplicate field"):
				msg = fmt.Sprintf("duplicate field %q: a key may be given only once", fe.FieldPath())
			case strings.HasPrefix(msg, "unknown field"):
				msg = fmt.Sprintf("unknown field %q: the API has no such field (keys are case-sensitive)", fe.FieldPath())
			}
		}
		msgs = append(msgs, msg)
	}
	return badRequest("%s", strings.Join(msgs, "; "))
}

func tooLarge() *apiError {
	return badRequest("request body larger than 1 MiB")
}

// checkContentType accepts form-urlencoded too because that is what
// `curl -d` sends unless told otherwise; the body is parsed as JSON anyway.
// YAML is accepted as Kubernetes does (application/yaml), and reports
// whether the body is YAML.
func checkContentType(ct string) (isYAML bool, err error) {
	if ct == "" {
		return false, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, newError(http.StatusUnsupportedMediaType, "Content-Type %q is malformed: %v", ct, err)
	}
	switch mt {
	case "application/json", "application/x-www-form-urlencoded":
		return false, nil
	case "application/yaml", "application/x-yaml", "text/yaml":
		return true, nil
	}
	return false, newError(http.StatusUnsupportedMediaType, "Content-Type %q is not supported: send application/json or application/yaml", mt)
}

func decodeError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return tooLarge()
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty: expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("request body is truncated: the JSON object is incomplete")
	case errors.As(err, &se):
		return badRequest("malformed JSON at offset %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &te):
		if te.Field == "" {
			return badRequest("request body must be a JSON object, got %s", te.Value)
		}
		// Fields of the embedded ObjectMeta are flat in JSON; the Go path
		// would name a level the client never wrote.
		// Embedded structs are flat in JSON; drop their Go names.
		field := strings.NewReplacer("ObjectMeta.", "", "PodSpec.", "").Replace(te.Field)
		want := jsonTypeName(te.Type.String())
		if want == "an integer" && strings.HasPrefix(te.Value, "number") {
			return badRequest("%s: %s is out of range or not an integer", field, te.Value)
		}
		return badRequest("%s: must be %s, got %s", field, want, te.Value)
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		// time.Time's UnmarshalJSON error carries no field path; every
		// time field is server-owned and ignored, so naming them all is
		// enough for the client to find it.
		return badRequest("createdAt/startedAt/finishedAt: %q is not an RFC 3339 time (they are set by the server: omit them)", pe.Value)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	// encoding/json has no typed error for unknown fields; its message
	// already names the field ("unknown field \"x\"").
	if strings.HasPrefix(msg, "unknown field") {
		return badRequest("%s: the API has no such field", msg)
	}
	return badRequest("invalid JSON: %s", msg)
}

// jsonTypeName describes a Go type in the JSON terms a client knows.
func jsonTypeName(goType string) string {
	switch {
	case goType == "string", strings.HasSuffix(goType, "PodPhase"):
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["):
		return "an object"
	case goType == "time.Time":
		return "an RFC 3339 time string"
	}
	return "a " + goType
}

// checkQuery refuses parameters the endpoint does not know, so a misspelt
// filter does not silently return everything.
func checkQuery(q url.Values, allowed ...string) error {
	for k, vs := range q {
		known := false
		for _, a := range allowed {
			if k == a {
				known = true
				break
			}
		}
		if !known {
			if len(allowed) == 0 {
				return badRequest("query parameter %q is not supported here", k)
			}
			return badRequest("query parameter %q is not supported here (supported: %s)", k, strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return badRequest("query parameter %q given %d times", k, len(vs))
		}
	}
	return nil
}

// parseSelector parses an equality-only label selector, "k=v,k2==v2".
// Set-based and inequality forms are refused rather than misread.
func parseSelector(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	sel := map[string]string{}
	for term := range strings.SplitSeq(s, ",") {
		term = strings.TrimSpace(term)
		if strings.Contains(term, "!=") {
			return nil, badRequest("labelSelector: %q: only equality (k=v) is supported", term)
		}
		k, v, ok := strings.Cut(term, "=")
		v = strings.TrimPrefix(v, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || strings.Contains(v, "=") {
			return nil, badRequest("labelSelector: %q is not of the form key=value", term)
		}
		if old, dup := sel[k]; dup && old != v {
			return nil, badRequest("labelSelector: key %q given twice with different values", k)
		}
		sel[k] = v
	}
	if err := schemas.ValidateLabels("labelSelector", sel); err != nil {
		return nil, badRequest("%s", flatten(err))
	}
	return sel, nil
}

// parseResourceVersion reads the optional ?resourceVersion=N precondition.
func parseResourceVersion(q url.Values) (uint64, error) {
	s := q.Get("resourceVersion")
	if s == "" {
		return 0, nil
	}
	rv, err := strconv.ParseUint(s, 10, 64)
	if err != nil || rv == 0 {
		return 0, badRequest("resourceVersion: %q is not a positive integer", s)
	}
	return rv, nil
}

func validatePathName(kind, name string) error {
	if err := schemas.ValidateName("name", name, schemas.MaxNameLength); err != nil {
		return badRequest("invalid %s name in path: %s", kind, err)
	}
	return nil
}

package kube

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kwatch "k8s.io/apimachinery/pkg/watch"
)

// writeTimeout bounds one write to a watch's client: a client that
// stops reading is dropped.
const writeTimeout = 30 * time.Second

// watchOpts are a watch's query parameters.
type watchOpts struct {
	from          uint64
	initialEvents bool
	bookmarks     bool
	timeout       time.Duration
	sel           *selectors
	table         bool
}

func parseWatch(r *http.Request) (*watchOpts, error) {
	qv := r.URL.Query()
	o := &watchOpts{table: wantsTable(r)}
	var err error
	if o.sel, err = parseSelectors(r); err != nil {
		return nil, err
	}
	if v := qv.Get("resourceVersion"); v != "" {
		if o.from, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, apierrors.NewBadRequest("resourceVersion: " + strconv.Quote(v) + " is not a resourceVersion")
		}
	}
	o.bookmarks, _ = strconv.ParseBool(qv.Get("allowWatchBookmarks"))
	if v := qv.Get("sendInitialEvents"); v != "" {
		if o.initialEvents, err = strconv.ParseBool(v); err != nil {
			return nil, badRequest("sendInitialEvents: %q is not a boolean", v)
		}
		if qv.Get("resourceVersionMatch") != string(metav1.ResourceVersionMatchNotOlderThan) {
			return nil, apierrors.NewInvalid(metav1.SchemeGroupVersion.WithKind("ListOptions").GroupKind(), "",
				field.ErrorList{field.Forbidden(field.NewPath("sendInitialEvents"), "sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan")})
		}
	}
	if v := qv.Get("timeoutSeconds"); v != "" {
		s, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, badRequest("timeoutSeconds: %q is not a non-negative integer", v)
		}
		o.timeout = time.Duration(s) * time.Second
	}
	return o, nil
}

// watch streams the kind's changes as JSON watch events. Without a
// resourceVersion (or with 0) it starts with an ADDED per object, as does
// sendInitialEvents, which then sends the BOOKMARK annotated
// k8s.io/initial-events-end that client-go's streaming list waits for.
// A revision older than the history gets an ERROR event with a 410
// Status, as kube-apiserver sends.
func (h *Handler) watch(w http.ResponseWriter, r *http.Request, q *request) error {
	o, err := parseWatch(r)
	if err != nil {
		return err
	}
	if err := h.checkNamespace(r.Context(), q); err != nil {
		return err
	}
	ctx, cancel := h.cfg.StreamContext(r)
	defer cancel()
	if o.timeout > 0 {
		var c2 func()
		ctx, c2 = contextWithTimeout(ctx, o.timeout)
		defer c2()
	}
	from := o.from
	snapshot := from == 0 || o.initialEvents
	if snapshot {
		from = 0
	}
	wt, err := h.cfg.Store.Watch(ctx, q.info.Resource, from)
	var expired error
	if errors.Is(err, ErrExpired) {
		expired, err = err, nil
	}
	if err != nil {
		return err
	}
	sw := startStream(w)
	if expired != nil {
		se := apierrors.NewResourceExpired("too old resource version: " + strconv.FormatUint(o.from, 10))
		st := se.ErrStatus
		st.Kind, st.APIVersion = "Status", "v1"
		_ = sw.event(string(kwatch.Error), &st)
		return nil
	}
	defer wt.Stop()
	match := func(obj Object) bool {
		ok, err := o.sel.matches(h, q, obj)
		return err == nil && ok && !q.elsewhere()
	}
	send := func(typ string, obj Object, rev uint64, flush bool) error {
		if rev == 0 && !o.table {
			// The JSON at the object's revision, encoded once for every
			// watcher and list (wireCache).
			data, err := h.objectJSON(q, obj)
			if err != nil {
				return err
			}
			return sw.raw(typ, data, flush)
		}
		k, err := h.toKube(q, obj)
		if err != nil {
			return err
		}
		if rev != 0 {
			if m, err := meta.Accessor(k); err == nil {
				m.SetResourceVersion(strconv.FormatUint(rev, 10))
			}
		}
		if o.table {
			t, err := h.table(r, q, []runtime.Object{k}, "", "")
			if err != nil {
				return err
			}
			return sw.event(typ, t)
		}
		return sw.event(typ, k)
	}
	last := wt.Rev
	if snapshot {
		for _, obj := range wt.Snapshot {
			if !match(obj) {
				continue
			}
			if err := send(string(kwatch.Added), obj, 0, false); err != nil {
				return nil
			}
		}
		if o.initialEvents {
			if err := h.bookmark(sw, q, last, true); err != nil {
				return nil
			}
		}
		if err := sw.flush(); err != nil {
			return nil
		}
	} else {
		last = o.from
	}
	tick := time.NewTicker(h.cfg.Bookmark)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if o.bookmarks {
				if err := h.bookmark(sw, q, last, false); err != nil {
					return nil
				}
			}
		case c, ok := <-wt.C:
			if !ok {
				return nil // dropped: the client resumes from last
			}
			last = c.Rev
			was := c.Prev != nil && match(c.Prev)
			now := c.Obj != nil && match(c.Obj)
			var err error
			switch {
			case was && now:
				err = send(string(kwatch.Modified), c.Obj, 0, true)
			case now:
				err = send(string(kwatch.Added), c.Obj, 0, true)
			case was && c.Obj != nil:
				err = send(string(kwatch.Deleted), c.Obj, 0, true) // left the selection
			case was:
				err = send(string(kwatch.Deleted), c.Prev, c.Rev, true)
			}
			if err != nil {
				return nil
			}
		}
	}
}

// bookmark sends a BOOKMARK: an empty object of the kind carrying only
// the revision reached (and the end-of-initial-events annotation).
func (h *Handler) bookmark(sw *stream, q *request, rev uint64, initialEnd bool) error {
	k := q.kind.NewKube()
	setGVK(k, q.info.GVK())
	m, err := meta.Accessor(k)
	if err != nil {
		return err
	}
	m.SetResourceVersion(strconv.FormatUint(rev, 10))
	if initialEnd {
		m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	return sw.event(string(kwatch.Bookmark), k)
}

// stream writes watch events, one JSON object per line, each flushed.
type stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startStream(w http.ResponseWriter) *stream {
	rc := http.NewResponseController(w)
	// Watches outlive the server's request timeouts; each write gets its
	// own deadline instead.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-cache, private")
	w.WriteHeader(http.StatusOK)
	s := &stream{w: w, rc: rc}
	_ = s.flush()
	return s
}

func (s *stream) event(typ string, obj any) error {
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	line, err := json.Marshal(&metav1.WatchEvent{Type: typ, Object: runtime.RawExtension{Raw: data}})
	if err != nil {
		return err
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := s.w.Write(append(line, '\n')); err != nil {
		return err
	}
	return s.flush()
}

// raw writes an event around an object already encoded, as
// metav1.WatchEvent encodes it; flush false leaves it buffered (a
// snapshot's events are flushed once, after the last).
func (s *stream) raw(typ string, obj []byte, flush bool) error {
	line := make([]byte, 0, len(obj)+32)
	line = append(line, `{"type":`...)
	line = strconv.AppendQuote(line, typ) // typ is one of kwatch's constants: ASCII letters
	line = append(line, `,"object":`...)
	line = append(line, obj...)
	line = append(line, "}\n"...)
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := s.w.Write(line); err != nil {
		return err
	}
	if !flush {
		return nil
	}
	return s.flush()
}

func (s *stream) flush() error {
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

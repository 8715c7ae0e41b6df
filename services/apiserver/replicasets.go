package apiserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
)

const kindReplicaSet = "replicaset"

func (s *Server) listReplicaSets(ctx context.Context, w http.ResponseWriter, r *http.Request, _ string) (int, any, error) {
	if isWatch(r) {
		return s.watchReplicaSets(ctx, w, r)
	}
	sel, err := listParams(r)
	if err != nil {
		return 0, nil, err
	}
	out, err := listObjects(ctx, s.conn.ReplicaSets, s.rss, kindReplicaSet, sel, nil)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

func (s *Server) getReplicaSet(ctx context.Context, _ http.ResponseWriter, r *http.Request, name string) (int, any, error) {
	if err := checkQuery(r.URL.Query()); err != nil {
		return 0, nil, err
	}
	rs, err := getObject(ctx, s.conn.ReplicaSets, kindReplicaSet, name)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rs, nil
}

func (s *Server) createReplicaSet(ctx context.Context, w http.ResponseWriter, r *http.Request, _ string) (int, any, error) {
	if err := checkQuery(r.URL.Query()); err != nil {
		return 0, nil, err
	}
	var rs schemas.ReplicaSet
	if err := decodeBody(w, r, &rs); err != nil {
		return 0, nil, err
	}
	// The replicaset strategy: identity reset, and status too (only the
	// controller counts pods; a client's numbers would be a lie until its
	// first reconcile).
	kinds.PrepareReplicaSetForCreate(&rs, s.now())
	if err := rs.Validate(); err != nil {
		return 0, nil, invalid(kindReplicaSet, err)
	}
	if errs := kinds.ValidateReplicaSet(&rs); len(errs) > 0 {
		return 0, nil, invalid(kindReplicaSet, errs.ToAggregate())
	}
	if err := rs.CheckPodSecurity(s.cfg.PodSecurity); err != nil {
		return 0, nil, forbidden(kindReplicaSet, rs.Name, err)
	}
	if err := s.conn.ReplicaSets.Create(ctx, &rs); err != nil {
		if errors.Is(err, bus.ErrAlreadyExists) {
			return 0, nil, alreadyExists(kindReplicaSet, rs.Name)
		}
		return 0, nil, err
	}
	s.log.Info("replicaset created", "replicaset", rs.Name, "desiredCount", rs.DesiredCount, "resourceVersion", rs.ResourceVersion)
	s.publish(bus.SubjReplicaSetCreated, schemas.Event{Type: "created", Kind: schemas.KindReplicaSet, Name: rs.Name, Revision: rs.ResourceVersion})
	w.Header().Set("Location", "/replicasets/"+rs.Name)
	return http.StatusCreated, &rs, nil
}

// updateReplicaSet replaces the replicaset's spec. With a resourceVersion
// in the body it is a compare-and-swap against that version; without one
// it is applied to whatever version is current, but still with CAS, so it
// can never undo a concurrent write of the status by the controller.
func (s *Server) updateReplicaSet(ctx context.Context, w http.ResponseWriter, r *http.Request, name string) (int, any, error) {
	if err := checkQuery(r.URL.Query()); err != nil {
		return 0, nil, err
	}
	var in schemas.ReplicaSet
	if err := decodeBody(w, r, &in); err != nil {
		return 0, nil, err
	}
	if in.Name != "" && in.Name != name {
		return 0, nil, badRequest("name: %q in the body does not match %q in the path (renaming is not supported)", in.Name, name)
	}
	in.Name = name
	if err := in.Validate(); err != nil {
		return 0, nil, invalid(kindReplicaSet, err)
	}
	sent := in.ResourceVersion

	var oldDesired int
	// apply takes the client's object as the new spec and carries over what
	// the server owns. Starting from the client's object (rather than
	// copying known spec fields onto the stored one) means a spec field
	// added to schemas later is updatable without touching this code.
	apply := func(cur *schemas.ReplicaSet) error {
		if !maps.Equal(cur.Selector, in.Selector) {
			return errSelectorImmutable
		}
		// As Kubernetes' Pod Security admission does on updates, an
		// unchanged template is not checked again: scaling a replicaset
		// admitted under another level (or written before the check
		// existed) still works, changing its template does not.
		if !reflect.DeepEqual(cur.Template, in.Template) {
			if err := in.CheckPodSecurity(s.cfg.PodSecurity); err != nil {
				return forbidden(kindReplicaSet, name, err)
			}
		}
		oldDesired = cur.DesiredCount
		next := *in.DeepCopy()
		next.UID = "" // the seed API has always taken the stored one
		kinds.PrepareReplicaSetForUpdate(&next, cur)
		next.ResourceVersion = cur.ResourceVersion
		if errs := kinds.ValidateReplicaSetUpdate(&next, cur); len(errs) > 0 {
			return invalid(kindReplicaSet, errs.ToAggregate())
		}
		*cur = next
		return nil
	}

	var (
		rs  *schemas.ReplicaSet
		err error
	)
	if sent != 0 {
		rs, err = s.casReplicaSet(ctx, name, sent, apply)
	} else {
		rs, err = s.conn.ReplicaSets.Mutate(ctx, name, apply)
		if errors.Is(err, bus.ErrNotFound) {
			err = notFound(kindReplicaSet, name)
		}
	}
	if err != nil {
		if _, ok := isAPIError(err); ok {
			return 0, nil, err
		}
		return 0, nil, err
	}

	s.log.Info("replicaset updated", "replicaset", name, "desiredCount", rs.DesiredCount, "resourceVersion", rs.ResourceVersion)
	s.publish(bus.SubjReplicaSetUpdated, schemas.Event{Type: "updated", Kind: schemas.KindReplicaSet, Name: name, Revision: rs.ResourceVersion})
	if oldDesired != rs.DesiredCount {
		s.publish(bus.SubjReplicaSetScaled, schemas.Event{
			Type: "scaled", Kind: schemas.KindReplicaSet, Name: name, Revision: rs.ResourceVersion,
			Message: fmt.Sprintf("desiredCount %d -> %d", oldDesired, rs.DesiredCount),
		})
	}
	return http.StatusOK, rs, nil
}

func (s *Server) casReplicaSet(ctx context.Context, name string, sent uint64, apply func(*schemas.ReplicaSet) error) (*schemas.ReplicaSet, error) {
	cur, err := getObject(ctx, s.conn.ReplicaSets, kindReplicaSet, name)
	if err != nil {
		return nil, err
	}
	// Checked before the selector so a stale client is told to re-read
	// first: its view of the selector may be what is out of date.
	if cur.ResourceVersion != sent {
		return nil, modified(kindReplicaSet, name, cur.ResourceVersion, sent)
	}
	if err := apply(cur); err != nil {
		return nil, err
	}
	err = s.conn.ReplicaSets.Update(ctx, cur)
	if errors.Is(err, bus.ErrConflict) {
		// Lost the race between our read and write; report the version
		// that won so the client knows what to re-read.
		latest, gerr := getObject(ctx, s.conn.ReplicaSets, kindReplicaSet, name)
		if gerr != nil {
			return nil, gerr
		}
		return nil, modified(kindReplicaSet, name, latest.ResourceVersion, sent)
	}
	if err != nil {
		return nil, err
	}
	return cur, nil
}

func (s *Server) deleteReplicaSet(ctx context.Context, _ http.ResponseWriter, r *http.Request, name string) (int, any, error) {
	q := r.URL.Query()
	if err := checkQuery(q, "resourceVersion"); err != nil {
		return 0, nil, err
	}
	want, err := parseResourceVersion(q)
	if err != nil {
		return 0, nil, err
	}
	// Background, as on the Kubernetes API: the garbage collector then
	// deletes its pods. Finalizers set there hold it here too.
	rs, gone, err := deleteObject(ctx, s.conn.ReplicaSets, kindReplicaSet, name, want, "", s.now)
	if err != nil {
		return 0, nil, err
	}
	if !gone {
		s.log.Info("replicaset deleting", "replicaset", name, "finalizers", rs.Finalizers, "resourceVersion", rs.ResourceVersion)
		return http.StatusOK, rs, nil
	}
	s.log.Info("replicaset deleted", "replicaset", name, "resourceVersion", rs.ResourceVersion)
	s.publish(bus.SubjReplicaSetDeleted, schemas.Event{Type: "deleted", Kind: schemas.KindReplicaSet, Name: name, Revision: rs.ResourceVersion})
	return http.StatusOK, rs, nil
}

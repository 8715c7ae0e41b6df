package kinds_test

import (
	"testing"

	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
)

// Every kind kept in a bucket names one of schemas.Stores holding that
// kind, and every store of a kind is a registered kind's: the bus creates
// buckets and grants permissions from the table, so a kind missing there
// would have nowhere to live, and a store missing here nothing to serve.
func TestStoresMatchKinds(t *testing.T) {
	stores := map[string]schemas.Store{}
	for _, s := range schemas.Stores {
		if _, dup := stores[s.Bucket]; dup {
			t.Errorf("bucket %s declared twice", s.Bucket)
		}
		stores[s.Bucket] = s
	}
	served := map[string]bool{}
	for _, k := range kinds.All() {
		i := k.Info()
		if i.Bucket == "" {
			continue
		}
		s, ok := stores[i.Bucket]
		switch {
		case !ok:
			t.Errorf("kind %s: bucket %s is not in schemas.Stores", i.Kind, i.Bucket)
		case s.Kind != i.Kind || !s.Objects:
			t.Errorf("kind %s: its bucket %s is declared for kind %q (objects %v)", i.Kind, i.Bucket, s.Kind, s.Objects)
		}
		served[i.Bucket] = true
	}
	for _, s := range schemas.Stores {
		if s.Kind != "" && !served[s.Bucket] {
			t.Errorf("store %s of kind %s: no registered kind keeps it", s.Bucket, s.Kind)
		}
	}
}

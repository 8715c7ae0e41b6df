package bus

import (
	"context"
	"time"
)

// pushSource is what an informer follows instead of a bucket's watch: a
// view the control plane pushes changes of (nodepods.go), and lists whole.
type pushSource[P any] interface {
	// subscribe calls fn with every change pushed until stop is called;
	// once it returns, every change made after the next list began is
	// pushed.
	subscribe(fn func(pushed[P])) (stop func(), err error)
	// list is the whole view, complete up to rev: every change up to rev
	// is in it.
	list(ctx context.Context) (objs []P, rev uint64, err error)
	// dropped counts the pushes lost so far (a slow subscriber).
	dropped() int
}

// pushed is one change: obj at rev, or (obj nil) the key gone at rev.
type pushed[P any] struct {
	name string
	rev  uint64
	obj  P
}

// watchPushed is watch for a pushed view. The pushes are hints, so the
// view is listed again at every resync period (in one go: a list of a
// node's pods is one small reply), when pushes were dropped and after a
// reconnect (Run calls it again): what a lost push changed is repaired
// then, and what the list no longer holds is dropped.
func (i *Informer[T, P]) watchPushed(ctx context.Context, reconnected <-chan struct{}, resync <-chan time.Time) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := make(chan pushed[P], 1024)
	stop, err := i.push.subscribe(func(c pushed[P]) {
		select {
		case changes <- c:
		case <-wctx.Done():
		}
	})
	if err != nil {
		return err
	}
	defer stop()
	if err := i.relist(wctx); err != nil {
		return err
	}
	dropped := i.push.dropped()
	tick := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reconnected:
			i.log.Info("connection re-established, relisting")
			return errRestart
		case <-resync:
			i.expire(time.Now())
			n := i.resyncTicks()
			i.notifySlice(tick%n, n)
			tick++
			d := i.push.dropped()
			if tick%n != 0 && d == dropped {
				continue
			}
			if d != dropped {
				i.log.Warn("pushes dropped, relisting", "dropped", d-dropped)
				dropped = d
			}
			if err := i.relist(wctx); err != nil {
				return err
			}
		case c := <-changes:
			i.applyPushed(c)
		}
	}
}

// relist loads the whole view: newer objects replace cached ones, and
// cached ones it no longer holds (and not written after it) are dropped.
func (i *Informer[T, P]) relist(ctx context.Context) error {
	objs, rev, err := i.push.list(ctx)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(objs))
	snapshotMax := rev
	for _, o := range objs {
		m := o.GetMeta()
		seen[m.Name] = true
		snapshotMax = max(snapshotMax, m.ResourceVersion)
		i.Observe(o)
	}
	i.finishSnapshot(seen, snapshotMax)
	return nil
}

// applyPushed applies one pushed change. Pushes and lists cross (a list
// built before a push may arrive after it), so each is applied only if
// newer than what the cache knows of its key, tombstones included.
func (i *Informer[T, P]) applyPushed(c pushed[P]) {
	if c.obj != nil {
		i.Observe(c.obj)
		return
	}
	i.deliver.Lock()
	defer i.deliver.Unlock()
	i.mu.Lock()
	if cur, ok := i.items[c.name]; ok && cur.GetMeta().ResourceVersion > c.rev {
		i.mu.Unlock()
		return
	}
	if t, ok := i.tombstones[c.name]; !ok || t.rev < c.rev {
		i.tombstones[c.name] = tombstone{rev: c.rev, at: time.Now()}
	}
	ch := i.deleteItemLocked(c.name)
	hs := i.events
	i.mu.Unlock()
	ch.deliver(hs)
}

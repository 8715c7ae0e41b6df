package bus

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/miniku/miniku/schemas"
)

// registeredSuffix marks a kubelet's credentials whose Node has been seen:
// from then on, that Node's deletion revokes them. Credentials made ahead
// of a kubelet's first start (its Node not registered yet) are kept.
const registeredSuffix = ".registered"

// Revocations decides, from the kubelet users with credentials in the auth
// dir, which of them have been seen registered, and the nodes that exist,
// which kubelets to mark as registered and which to revoke: a kubelet seen
// registered whose Node is gone. keep are the in-process kubelets, whose
// users are the server's own and never revoked.
func Revocations(creds, registered, nodes, keep []string) (mark, revoke []string) {
	for _, n := range creds {
		switch {
		case slices.Contains(keep, n):
		case slices.Contains(nodes, n):
			if !slices.Contains(registered, n) {
				mark = append(mark, n)
			}
		case slices.Contains(registered, n):
			revoke = append(revoke, n)
		}
	}
	return mark, revoke
}

// NodeInformer is what RevokeDeletedNodes needs of the nodes cache.
type NodeInformer interface {
	WaitSynced(ctx context.Context) error
	List() []*schemas.Node
	JoinEventHandler(ctx context.Context, h Handler[*schemas.Node]) (remove func(), err error)
}

// RevokeDeletedNodes removes the NATS credentials of a kubelet whose Node
// is deleted, so a deleted node can no longer log in (WatchUsers reloads
// the server's users, which closes its connections). Level-triggered: a
// node deletion reconciles at once, and every pass (every) also catches a
// deletion made while this process was down. Each server of a cluster runs
// it over its own auth dir.
func RevokeDeletedNodes(ctx context.Context, nodes NodeInformer, authDir string, keep []string, every time.Duration, log *slog.Logger) error {
	if authDir == "" {
		// No users (--insecure-no-auth): nothing to revoke. Return only
		// when stopped, as a caller's group may end every part when one
		// returns.
		<-ctx.Done()
		return nil
	}
	if err := nodes.WaitSynced(ctx); err != nil {
		return nil // ctx ended
	}
	kick := make(chan struct{}, 1)
	remove, err := nodes.JoinEventHandler(ctx, HandlerFuncs[*schemas.Node]{
		Add:    func(*schemas.Node) { poke(kick) },
		Delete: func(*schemas.Node) { poke(kick) },
	})
	if err != nil {
		return fmt.Errorf("revoke deleted nodes: %w", err)
	}
	defer remove()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := revokePass(nodes, authDir, keep, log); err != nil {
			log.Warn("revoke deleted nodes' credentials", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-t.C:
		}
	}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func revokePass(nodes NodeInformer, authDir string, keep []string, log *slog.Logger) error {
	creds, err := kubeletsIn(authDir, ".json")
	if err != nil {
		return err
	}
	registered, err := kubeletsIn(authDir, registeredSuffix)
	if err != nil {
		return err
	}
	var present []string
	for _, n := range nodes.List() {
		present = append(present, n.Name)
	}
	mark, revoke := Revocations(creds, registered, present, keep)
	for _, n := range mark {
		if err := WriteFileAtomic(filepath.Join(authDir, KubeletUser(n)+registeredSuffix), nil, 0o600); err != nil {
			return fmt.Errorf("mark kubelet %s registered: %w", n, err)
		}
	}
	for _, n := range revoke {
		// Credentials first: once they are gone the next user reload
		// refuses the node; the mark goes after, so a crash in between
		// only repeats this.
		if err := os.Remove(CredentialsPath(authDir, KubeletUser(n))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("revoke kubelet %s: %w", n, err)
		}
		if err := os.Remove(filepath.Join(authDir, KubeletUser(n)+registeredSuffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("revoke kubelet %s: %w", n, err)
		}
		log.Info("node deleted: its kubelet's NATS credentials are revoked", "node", n)
	}
	return nil
}

// kubeletsIn lists the node names of kubelet-<node><suffix> files in dir.
func kubeletsIn(dir, suffix string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, kubeletPrefix+"*"+suffix))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), kubeletPrefix), suffix))
	}
	return out, nil
}

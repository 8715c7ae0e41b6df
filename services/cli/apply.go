package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"time"

	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/cli/client"
)

// conflictRetries bounds the GET-then-PUT rounds when someone else keeps
// changing the object (409 on a stale resourceVersion).
const conflictRetries = 10

type waitFlags struct {
	wait    bool
	timeout time.Duration
}

func (w *waitFlags) register(fs interface {
	BoolVar(*bool, string, bool, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}) {
	fs.BoolVar(&w.wait, "wait", false, "wait until the replicasets are ready (all pods Running) or the pods run, showing progress")
	fs.DurationVar(&w.timeout, "timeout", 5*time.Minute, "give up (exit 1) after this long: waiting with --wait, or retrying while the API answers 503/429 (store unavailable, too many requests)")
}

func cmdApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	var w waitFlags
	var files []string
	fs := newFlagSet("apply", stderr, "apply -f FILE|DIR|- [-f ...] [--wait [--timeout 5m]]")
	o.register(fs)
	w.register(fs)
	fs.Func("f", "manifest file, directory of manifests, or - for stdin (YAML or JSON; repeatable)", func(s string) error {
		files = append(files, s)
		return nil
	})
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || len(files) == 0 {
		fs.Usage()
		return errors.New("apply: want -f FILE|DIR|-")
	}
	var objs []object
	for _, f := range files {
		o, err := readManifests(f, os.Stdin)
		if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		objs = append(objs, o...)
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	c.RetryFor = w.timeout
	for _, obj := range objs {
		verb, err := applyOne(ctx, c, obj)
		if err != nil {
			return fmt.Errorf("apply %s (%s): %w", obj.ref(), obj.Source, err)
		}
		fmt.Fprintf(stdout, "%s %s\n", obj.ref(), verb)
	}
	if !w.wait {
		return nil
	}
	for _, obj := range objs {
		if err := waitReady(ctx, c, obj, w.timeout, stdout); err != nil {
			return err
		}
	}
	return nil
}

// applyOne creates the object, or updates it by name with the
// resourceVersion rules: GET, then PUT with the revision read, again on
// 409. Pods cannot be changed once created (as in Kubernetes, mostly).
func applyOne(ctx context.Context, c *client.Client, obj object) (string, error) {
	if obj.Pod != nil {
		var cur schemas.Pod
		err := c.Do(ctx, "GET", "/pods/"+url.PathEscape(obj.Pod.Name), nil, &cur)
		if client.IsNotFound(err) {
			if err := c.Do(ctx, "POST", "/pods", obj.Pod, nil); err != nil {
				return "", err
			}
			return "created", nil
		}
		if err != nil {
			return "", err
		}
		if samePod(&cur, obj.Pod) {
			return "unchanged", nil
		}
		return "", fmt.Errorf("the pod exists with another spec and pods cannot be changed: delete it first (miniku delete pod %s)", obj.Pod.Name)
	}
	for range conflictRetries {
		var cur schemas.ReplicaSet
		err := c.Do(ctx, "GET", "/replicasets/"+url.PathEscape(obj.RS.Name), nil, &cur)
		if client.IsNotFound(err) {
			err = c.Do(ctx, "POST", "/replicasets", obj.RS, nil)
			if client.IsConflict(err) {
				continue // created meanwhile: update it
			}
			if err != nil {
				return "", err
			}
			return "created", nil
		}
		if err != nil {
			return "", err
		}
		if sameRS(&cur, obj.RS) {
			return "unchanged", nil
		}
		next := *obj.RS
		next.ResourceVersion = cur.ResourceVersion
		next.UID = cur.UID
		next.CreatedAt = cur.CreatedAt
		err = c.Do(ctx, "PUT", "/replicasets/"+url.PathEscape(next.Name), &next, nil)
		if client.IsConflict(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		return "configured", nil
	}
	return "", fmt.Errorf("still conflicting after %d attempts: someone keeps changing it", conflictRetries)
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func samePod(cur, want *schemas.Pod) bool {
	return jsonEqual(cur.PodSpec, want.PodSpec) && reflect.DeepEqual(nilIfEmpty(cur.Labels), nilIfEmpty(want.Labels)) &&
		(want.NodeName == "" || want.NodeName == cur.NodeName) && (want.ContainerName == "" || want.ContainerName == cur.ContainerName)
}

func sameRS(cur, want *schemas.ReplicaSet) bool {
	return cur.DesiredCount == want.DesiredCount && jsonEqual(cur.Template, want.Template) &&
		reflect.DeepEqual(nilIfEmpty(cur.Selector), nilIfEmpty(want.Selector)) &&
		reflect.DeepEqual(nilIfEmpty(cur.Labels), nilIfEmpty(want.Labels))
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// waitReady shows progress until the object is ready: a replicaset with
// all its desired pods Running, a pod Running (or Succeeded).
func waitReady(ctx context.Context, c *client.Client, obj object, timeout time.Duration, out io.Writer) error {
	if obj.RS != nil {
		return waitRS(ctx, c, obj.RS.Name, timeout, out)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		var p schemas.Pod
		err := c.Do(ctx, "GET", "/pods/"+url.PathEscape(obj.Pod.Name), nil, &p)
		if ctx.Err() != nil {
			return fmt.Errorf("pod/%s: not running after %v (status %s)", obj.Pod.Name, timeout, last)
		}
		if err != nil {
			return err
		}
		st := podStatus(&p)
		if st != last {
			fmt.Fprintf(out, "pod/%s %s\n", p.Name, st)
			last = st
		}
		switch {
		case p.Status == schemas.PodRunning || p.Status == schemas.PodSucceeded:
			return nil
		case p.Status == schemas.PodFailed:
			return fmt.Errorf("pod/%s failed: %s %s", p.Name, p.Reason, p.Message)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return fmt.Errorf("pod/%s: not running after %v (status %s)", obj.Pod.Name, timeout, last)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitRS prints "N/M Running" whenever it changes until every desired pod
// of the replicaset runs and no extra one is left.
func waitRS(ctx context.Context, c *client.Client, name string, timeout time.Duration, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pr := newProgress(out)
	defer pr.done()
	var rs schemas.ReplicaSet
	for {
		err := c.Do(ctx, "GET", "/replicasets/"+url.PathEscape(name), nil, &rs)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			return err
		}
		line := fmt.Sprintf("replicaset/%s: %d/%d Running", name, rs.ReadyCount, rs.DesiredCount)
		if rs.CurrentCount != rs.DesiredCount {
			line += fmt.Sprintf(" (%d pods)", rs.CurrentCount)
		}
		pr.show(line)
		if rs.ReadyCount == rs.DesiredCount && rs.CurrentCount == rs.DesiredCount {
			return nil
		}
		if sleepCtx(ctx, 250*time.Millisecond) != nil {
			break
		}
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctx.Err()
	}
	return fmt.Errorf("replicaset/%s not ready after %v: %d/%d Running%s", name, timeout, rs.ReadyCount, rs.DesiredCount, notRunning(c, name))
}

// notRunning describes a few of the replicaset's pods that do not run,
// to say why a wait failed.
func notRunning(c *client.Client, rs string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var pods []schemas.Pod
	if c.Do(ctx, "GET", "/pods", nil, &pods) != nil {
		return ""
	}
	s, n := "", 0
	for _, p := range pods {
		if p.Owner != rs || p.Status == schemas.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		if n++; n > 3 {
			s += "; ..."
			break
		}
		s += fmt.Sprintf("; pod/%s %s", p.Name, podStatus(&p))
		if p.Message != "" {
			s += ": " + p.Message
		}
	}
	return s
}

func cmdScale(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	var w waitFlags
	replicas := -1
	fs := newFlagSet("scale", stderr, "scale rs/NAME --replicas N [--wait [--timeout 5m]]")
	o.register(fs)
	w.register(fs)
	fs.IntVar(&replicas, "replicas", -1, "the new desired count")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	kind, name, rest, err := splitRef(pos)
	if err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	if kind != "replicasets" || len(rest) > 0 || replicas < 0 {
		fs.Usage()
		return errors.New("scale: want rs/NAME --replicas N (N ≥ 0)")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	c.RetryFor = w.timeout
	if err := scale(ctx, c, name, replicas); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replicaset/%s scaled to %d\n", name, replicas)
	if w.wait {
		return waitRS(ctx, c, name, w.timeout, stdout)
	}
	return nil
}

// scale sets desiredCount with a compare-and-swap PUT, retried on 409.
func scale(ctx context.Context, c *client.Client, name string, n int) error {
	path := "/replicasets/" + url.PathEscape(name)
	for range conflictRetries {
		var rs schemas.ReplicaSet
		if err := c.Do(ctx, "GET", path, nil, &rs); err != nil {
			return err
		}
		rs.DesiredCount = n
		err := c.Do(ctx, "PUT", path, &rs, nil)
		if client.IsConflict(err) {
			continue
		}
		return err
	}
	return fmt.Errorf("scale replicaset/%s: still conflicting after %d attempts", name, conflictRetries)
}

func cmdDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	var files []string
	grace := -1
	fs := newFlagSet("delete", stderr, "delete pod|rs NAME... | delete pod/NAME rs/NAME ... | delete -f FILE|DIR|-")
	o.register(fs)
	fs.Func("f", "delete the objects of these manifests (repeatable)", func(s string) error {
		files = append(files, s)
		return nil
	})
	fs.IntVar(&grace, "grace-period", -1, "pods: seconds between SIGTERM and SIGKILL (default: the pod's own)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	var refs [][2]string // kind path, name
	for _, f := range files {
		objs, err := readManifests(f, os.Stdin)
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		for _, obj := range objs {
			if obj.RS != nil {
				refs = append(refs, [2]string{"replicasets", obj.RS.Name})
			} else {
				refs = append(refs, [2]string{"pods", obj.Pod.Name})
			}
		}
	}
	for len(pos) > 0 {
		kind, name, rest, err := splitRef(pos)
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		refs = append(refs, [2]string{kind, name})
		// "delete pod a b c": the names after the kind.
		for len(rest) > 0 && !isRef(rest[0]) && kind == mustKind(pos[0]) {
			refs = append(refs, [2]string{kind, rest[0]})
			rest = rest[1:]
		}
		pos = rest
	}
	if len(refs) == 0 {
		fs.Usage()
		return errors.New("delete: nothing to delete")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	for _, r := range refs {
		if r[0] != "pods" && r[0] != "replicasets" {
			return fmt.Errorf("delete: %s cannot be deleted (pods and replicasets can)", r[0])
		}
		path := "/" + r[0] + "/" + url.PathEscape(r[1])
		if grace >= 0 && r[0] == "pods" {
			path += fmt.Sprintf("?gracePeriodSeconds=%d", grace)
		}
		if err := c.Do(ctx, "DELETE", path, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s/%s deleted\n", singular(r[0]), r[1])
	}
	return nil
}

func isRef(s string) bool {
	for i := range len(s) {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// mustKind is kindOf for a word that has a "/" or is a kind; "" otherwise.
func mustKind(s string) string {
	if isRef(s) {
		return ""
	}
	k, _ := kindOf(s)
	return k
}

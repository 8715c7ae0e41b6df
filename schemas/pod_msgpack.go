package schemas

import (
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Pods are encoded and decoded several times per write (the writer, then
// every watcher: the control plane's cache, each kubelet process, each
// HTTP watch), so they skip msgpack's reflection: these methods write and
// read exactly what it would (same keys, same order, same omitempty rules
// and number widths), several times faster and with fewer allocations.
// TestPodMsgpackMatchesReflection holds them to it, field by field.
//
// msgpack's rules mirrored here: the json tag names the key; "omitempty"
// drops an empty field (a nil pointer, or one to a zero time.Time; an empty
// string, slice or map; false; 0); "omitzero" is not an msgpack option, so
// createdAt and resources are always written; an int is written compactly,
// an int64 or uint64 in nine bytes.

// EncodeMsgpack implements msgpack.CustomEncoder.
func (p Pod) EncodeMsgpack(e *msgpack.Encoder) error {
	var ew errWriter
	// name, createdAt, image, resources, nodeName, status and containerId
	// are always written.
	n := 7 + count(p.UID != "", p.ResourceVersion != 0, len(p.Labels) > 0,
		len(p.Annotations) > 0, p.GenerateName != "", p.Generation != 0, len(p.Finalizers) > 0,
		len(p.OwnerReferences) > 0, len(p.ManagedFields) > 0, len(p.Ports) > 0, p.ContainerName != "",
		len(p.Command) > 0, len(p.Env) > 0, len(p.NodeSelector) > 0, p.RestartPolicy != "",
		p.HostNetwork, p.TerminationGracePeriodSeconds != nil, p.Owner != "", p.OwnerUID != "",
		!zeroTime(p.DeletionTimestamp), p.DeletionGracePeriodSeconds != nil, p.ExitCode != nil,
		p.Reason != "", p.Message != "", p.RestartCount != 0, !zeroTime(p.StartedAt), !zeroTime(p.FinishedAt))
	ew.do(e.EncodeMapLen(n))
	ew.str(e, "name", p.Name)
	if p.UID != "" {
		ew.str(e, "uid", p.UID)
	}
	if p.ResourceVersion != 0 {
		ew.key(e, "resourceVersion")
		ew.do(e.EncodeUint64(p.ResourceVersion))
	}
	ew.key(e, "createdAt")
	ew.do(e.EncodeTime(p.CreatedAt))
	if len(p.Labels) > 0 {
		ew.key(e, "labels")
		ew.stringMap(e, p.Labels)
	}
	if len(p.Annotations) > 0 {
		ew.key(e, "annotations")
		ew.stringMap(e, p.Annotations)
	}
	if p.GenerateName != "" {
		ew.str(e, "generateName", p.GenerateName)
	}
	if p.Generation != 0 {
		ew.key(e, "generation")
		ew.do(e.EncodeInt64(p.Generation))
	}
	if len(p.Finalizers) > 0 {
		ew.key(e, "finalizers")
		ew.strings(e, p.Finalizers)
	}
	// Rare on the hot path (pods of a replicaset carry the owner in
	// owner/ownerUid): msgpack's reflection writes these.
	if len(p.OwnerReferences) > 0 {
		ew.key(e, "ownerReferences")
		ew.do(e.Encode(p.OwnerReferences))
	}
	if len(p.ManagedFields) > 0 {
		ew.key(e, "managedFields")
		ew.do(e.Encode(p.ManagedFields))
	}
	if !zeroTime(p.DeletionTimestamp) {
		ew.key(e, "deletionTimestamp")
		ew.do(e.EncodeTime(*p.DeletionTimestamp))
	}
	if p.DeletionGracePeriodSeconds != nil {
		ew.key(e, "deletionGracePeriodSeconds")
		ew.do(e.EncodeInt64(*p.DeletionGracePeriodSeconds))
	}
	if p.ContainerName != "" {
		ew.str(e, "containerName", p.ContainerName)
	}
	ew.str(e, "image", p.Image)
	if len(p.Command) > 0 {
		ew.key(e, "command")
		ew.strings(e, p.Command)
	}
	if len(p.Env) > 0 {
		ew.key(e, "env")
		ew.do(e.EncodeArrayLen(len(p.Env)))
		for _, v := range p.Env {
			ew.do(e.EncodeMapLen(2))
			ew.str(e, "name", v.Name)
			ew.str(e, "value", v.Value)
		}
	}
	ew.key(e, "resources")
	r := p.Resources
	ew.do(e.EncodeMapLen(count(r.CPU != "", r.Memory != "", r.Pids != 0, r.Pods != 0, r.EphemeralStorage != "")))
	if r.CPU != "" {
		ew.str(e, "cpu", r.CPU)
	}
	if r.Memory != "" {
		ew.str(e, "memory", r.Memory)
	}
	if r.Pids != 0 {
		ew.key(e, "pids")
		ew.do(e.EncodeInt64(r.Pids))
	}
	if r.Pods != 0 {
		ew.key(e, "pods")
		ew.do(e.EncodeInt(int64(r.Pods)))
	}
	if r.EphemeralStorage != "" {
		ew.str(e, "ephemeral-storage", r.EphemeralStorage)
	}
	if len(p.NodeSelector) > 0 {
		ew.key(e, "nodeSelector")
		ew.stringMap(e, p.NodeSelector)
	}
	if p.RestartPolicy != "" {
		ew.str(e, "restartPolicy", string(p.RestartPolicy))
	}
	if p.HostNetwork {
		ew.key(e, "hostNetwork")
		ew.do(e.EncodeBool(true))
	}
	if p.TerminationGracePeriodSeconds != nil {
		ew.key(e, "terminationGracePeriodSeconds")
		ew.do(e.EncodeInt64(*p.TerminationGracePeriodSeconds))
	}
	if len(p.Ports) > 0 {
		ew.key(e, "ports")
		ew.do(e.Encode(p.Ports))
	}
	if p.Owner != "" {
		ew.str(e, "owner", p.Owner)
	}
	if p.OwnerUID != "" {
		ew.str(e, "ownerUid", p.OwnerUID)
	}
	ew.str(e, "nodeName", p.NodeName)
	ew.str(e, "status", string(p.Status))
	ew.str(e, "containerId", p.ContainerID)
	if p.ExitCode != nil {
		ew.key(e, "exitCode")
		ew.do(e.EncodeInt(int64(*p.ExitCode)))
	}
	if p.Reason != "" {
		ew.str(e, "reason", p.Reason)
	}
	if p.Message != "" {
		ew.str(e, "message", p.Message)
	}
	if p.RestartCount != 0 {
		ew.key(e, "restartCount")
		ew.do(e.EncodeInt(int64(p.RestartCount)))
	}
	if !zeroTime(p.StartedAt) {
		ew.key(e, "startedAt")
		ew.do(e.EncodeTime(*p.StartedAt))
	}
	if !zeroTime(p.FinishedAt) {
		ew.key(e, "finishedAt")
		ew.do(e.EncodeTime(*p.FinishedAt))
	}
	return ew.err
}

// DecodeMsgpack implements msgpack.CustomDecoder. Unknown keys are skipped
// (a newer writer's fields); a key present overwrites the field, absent
// ones are left alone, as msgpack's own decoder does.
func (p *Pod) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeMapLen()
	if err != nil {
		return err
	}
	var kb keyBuf
	for range max(n, 0) {
		key, err := kb.read(d)
		if err != nil {
			return err
		}
		var r reader
		switch string(key) {
		case "name":
			p.Name = r.str(d)
		case "uid":
			p.UID = r.str(d)
		case "resourceVersion":
			p.ResourceVersion, r.err = d.DecodeUint64()
		case "createdAt":
			p.CreatedAt = r.time(d)
		case "labels":
			p.Labels = r.stringMap(d)
		case "annotations":
			p.Annotations = r.stringMap(d)
		case "generateName":
			p.GenerateName = r.str(d)
		case "generation":
			p.Generation, r.err = d.DecodeInt64()
		case "finalizers":
			p.Finalizers = r.strings(d)
		case "ownerReferences":
			r.err = d.Decode(&p.OwnerReferences)
		case "managedFields":
			r.err = d.Decode(&p.ManagedFields)
		case "ports":
			r.err = d.Decode(&p.Ports)
		case "containerName":
			p.ContainerName = r.str(d)
		case "image":
			p.Image = r.str(d)
		case "command":
			p.Command = r.strings(d)
		case "env":
			p.Env = r.env(d)
		case "resources":
			r.resources(d, &p.Resources)
		case "nodeSelector":
			p.NodeSelector = r.stringMap(d)
		case "restartPolicy":
			p.RestartPolicy = RestartPolicy(r.str(d))
		case "hostNetwork":
			p.HostNetwork, r.err = d.DecodeBool()
		case "terminationGracePeriodSeconds":
			p.TerminationGracePeriodSeconds = r.int64Ptr(d)
		case "owner":
			p.Owner = r.str(d)
		case "ownerUid":
			p.OwnerUID = r.str(d)
		case "nodeName":
			p.NodeName = r.str(d)
		case "deletionTimestamp":
			p.DeletionTimestamp = r.timePtr(d)
		case "deletionGracePeriodSeconds":
			p.DeletionGracePeriodSeconds = r.int64Ptr(d)
		case "status":
			p.Status = PodPhase(r.str(d))
		case "containerId":
			p.ContainerID = r.str(d)
		case "exitCode":
			if v := r.int64Ptr(d); v != nil {
				c := int(*v)
				p.ExitCode = &c
			} else {
				p.ExitCode = nil
			}
		case "reason":
			p.Reason = r.str(d)
		case "message":
			p.Message = r.str(d)
		case "restartCount":
			p.RestartCount, r.err = d.DecodeInt()
		case "startedAt":
			p.StartedAt = r.timePtr(d)
		case "finishedAt":
			p.FinishedAt = r.timePtr(d)
		default:
			r.err = d.Skip()
		}
		if r.err != nil {
			return fmt.Errorf("pod field %q: %w", key, r.err)
		}
	}
	return nil
}

func count(conds ...bool) int {
	n := 0
	for _, c := range conds {
		if c {
			n++
		}
	}
	return n
}

// zeroTime is msgpack's omitempty test for a *time.Time: nil, or zero.
func zeroTime(t *time.Time) bool { return t == nil || t.IsZero() }

// errWriter keeps the first encoding error.
type errWriter struct{ err error }

func (w *errWriter) do(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *errWriter) key(e *msgpack.Encoder, k string) { w.do(e.EncodeString(k)) }

func (w *errWriter) str(e *msgpack.Encoder, k, v string) {
	w.do(e.EncodeString(k))
	w.do(e.EncodeString(v))
}

func (w *errWriter) strings(e *msgpack.Encoder, ss []string) {
	w.do(e.EncodeArrayLen(len(ss)))
	for _, s := range ss {
		w.do(e.EncodeString(s))
	}
}

func (w *errWriter) stringMap(e *msgpack.Encoder, m map[string]string) {
	w.do(e.EncodeMapLen(len(m)))
	for k, v := range m {
		w.str(e, k, v)
	}
}

// keyBuf reads map keys without allocating a string for each: they are
// only compared with the known names.
type keyBuf struct{ b []byte }

func (k *keyBuf) read(d *msgpack.Decoder) ([]byte, error) {
	if k.b == nil {
		k.b = make([]byte, 256)
	}
	if err := d.ReadFull(k.b[:1]); err != nil {
		return nil, err
	}
	var n int
	switch c := k.b[0]; {
	case msgpcode.IsFixedString(c):
		n = int(c & msgpcode.FixedStrMask)
	case c == msgpcode.Str8:
		if err := d.ReadFull(k.b[:1]); err != nil {
			return nil, err
		}
		n = int(k.b[0])
	default:
		return nil, fmt.Errorf("msgpack: map key of code %x is not a short string", c)
	}
	if err := d.ReadFull(k.b[:n]); err != nil {
		return nil, err
	}
	return k.b[:n], nil
}

// reader keeps the first decoding error of one field.
type reader struct{ err error }

func (r *reader) str(d *msgpack.Decoder) string {
	s, err := d.DecodeString()
	r.err = err
	return s
}

// isNil consumes a nil and reports it.
func (r *reader) isNil(d *msgpack.Decoder) bool {
	c, err := d.PeekCode()
	if err != nil {
		r.err = err
		return true
	}
	if c != msgpcode.Nil {
		return false
	}
	r.err = d.DecodeNil()
	return true
}

func (r *reader) time(d *msgpack.Decoder) time.Time {
	if r.isNil(d) {
		if r.err == nil {
			r.err = fmt.Errorf("nil where a time belongs")
		}
		return time.Time{}
	}
	t, err := d.DecodeTime()
	r.err = err
	return t
}

func (r *reader) timePtr(d *msgpack.Decoder) *time.Time {
	if r.isNil(d) {
		return nil
	}
	t, err := d.DecodeTime()
	r.err = err
	return &t
}

func (r *reader) int64Ptr(d *msgpack.Decoder) *int64 {
	if r.isNil(d) {
		return nil
	}
	v, err := d.DecodeInt64()
	r.err = err
	return &v
}

func (r *reader) strings(d *msgpack.Decoder) []string {
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		r.err = err
		return nil
	}
	out := make([]string, n)
	for i := range out {
		if out[i], r.err = d.DecodeString(); r.err != nil {
			return nil
		}
	}
	return out
}

func (r *reader) stringMap(d *msgpack.Decoder) map[string]string {
	n, err := d.DecodeMapLen()
	if err != nil || n < 0 {
		r.err = err
		return nil
	}
	out := make(map[string]string, n)
	for range n {
		k, err := d.DecodeString()
		if err != nil {
			r.err = err
			return nil
		}
		if out[k], r.err = d.DecodeString(); r.err != nil {
			return nil
		}
	}
	return out
}

func (r *reader) env(d *msgpack.Decoder) []EnvVar {
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		r.err = err
		return nil
	}
	out := make([]EnvVar, n)
	for i := range out {
		m, err := d.DecodeMapLen()
		if err != nil {
			r.err = err
			return nil
		}
		for range max(m, 0) {
			k, err := d.DecodeString()
			if err != nil {
				r.err = err
				return nil
			}
			switch k {
			case "name":
				out[i].Name = r.str(d)
			case "value":
				out[i].Value = r.str(d)
			default:
				r.err = d.Skip()
			}
			if r.err != nil {
				return nil
			}
		}
	}
	return out
}

func (r *reader) resources(d *msgpack.Decoder, rl *ResourceList) {
	n, err := d.DecodeMapLen()
	if err != nil {
		r.err = err
		return
	}
	for range max(n, 0) {
		k, err := d.DecodeString()
		if err != nil {
			r.err = err
			return
		}
		switch k {
		case "cpu":
			rl.CPU = r.str(d)
		case "memory":
			rl.Memory = r.str(d)
		case "pids":
			rl.Pids, r.err = d.DecodeInt64()
		case "pods":
			rl.Pods, r.err = d.DecodeInt()
		case "ephemeral-storage":
			rl.EphemeralStorage = r.str(d)
		default:
			r.err = d.Skip()
		}
		if r.err != nil {
			return
		}
	}
}

package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/miniku/miniku/schemas"
)

// object is one manifest, converted to the API's shape: Pod or RS is set.
type object struct {
	Source string // file and document, for messages
	Pod    *schemas.Pod
	RS     *schemas.ReplicaSet
}

func (o object) ref() string {
	if o.RS != nil {
		return "replicaset/" + o.RS.Name
	}
	return "pod/" + o.Pod.Name
}

// readManifests reads every object of a file, a directory (its .yaml,
// .yml and .json files, sorted) or "-" (stdin).
func readManifests(path string, stdin io.Reader) ([]object, error) {
	if path == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return parseManifests("<stdin>", data)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := []string{path}
	if st.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		files = files[:0]
		for _, e := range entries {
			switch filepath.Ext(e.Name()) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					files = append(files, filepath.Join(path, e.Name()))
				}
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no .yaml, .yml or .json files in it", path)
		}
	}
	var out []object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		objs, err := parseManifests(f, data)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// parseManifests parses YAML documents (JSON is YAML) separated by "---";
// a document may also be a list of objects.
func parseManifests(source string, data []byte) ([]object, error) {
	var out []object
	for i, doc := range docSeparator.Split(string(data), -1) {
		src := source
		if i > 0 || docSeparator.MatchString(string(data)) {
			src = fmt.Sprintf("%s (document %d)", source, i+1)
		}
		// Strict: a key given twice is refused instead of the last one
		// silently winning (JSON documents are parsed as YAML too).
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: %s", src, strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")), " "))
		}
		js = bytes.TrimSpace(js)
		if len(js) == 0 || string(js) == "null" {
			continue
		}
		var items []map[string]any
		if js[0] == '[' {
			if err := json.Unmarshal(js, &items); err != nil {
				return nil, fmt.Errorf("%s: want a list of objects: %w", src, err)
			}
		} else {
			var m map[string]any
			if err := json.Unmarshal(js, &m); err != nil {
				return nil, fmt.Errorf("%s: want an object: %w", src, err)
			}
			items = []map[string]any{m}
		}
		for j, m := range items {
			s := src
			if len(items) > 1 {
				s = fmt.Sprintf("%s item %d", src, j+1)
			}
			o, err := convert(m)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s, err)
			}
			o.Source = s
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no objects in it", source)
	}
	return out, nil
}

// convert maps one manifest to a MiniKu object: Kubernetes-style when it
// has an apiVersion, MiniKu's own shape otherwise.
func convert(m map[string]any) (object, error) {
	kind, _ := m["kind"].(string)
	if _, ok := m["apiVersion"]; ok {
		return convertK8s(m, kind)
	}
	if kind == "" {
		// MiniKu's own objects carry no kind: a replicaset is the one with a template.
		if _, ok := m["template"]; ok {
			kind = "ReplicaSet"
		} else {
			kind = "Pod"
		}
	}
	delete(m, "kind")
	data, err := json.Marshal(m)
	if err != nil {
		return object{}, err
	}
	var o object
	switch kind {
	case "Pod":
		o.Pod = &schemas.Pod{}
		err = strictJSON(data, o.Pod)
		if err == nil {
			err = o.Pod.Validate()
		}
	case "ReplicaSet":
		o.RS = &schemas.ReplicaSet{}
		err = strictJSON(data, o.RS)
		if err == nil {
			err = o.RS.Validate()
		}
	default:
		return o, fmt.Errorf("kind %q: MiniKu has Pod and ReplicaSet", kind)
	}
	if err != nil {
		return o, fmt.Errorf("%s: %w", kind, err)
	}
	return o, nil
}

// strictJSON decodes as the API does: keys match field names exactly
// (encoding/json would let "Name" fill name), and an unknown or
// duplicate key is an error naming it (opts: only those checks).
func strictJSON(data []byte, v any, opts ...k8sjson.StrictOption) error {
	strict, err := k8sjson.UnmarshalStrict(data, v, opts...)
	if err != nil {
		return err
	}
	if len(strict) == 0 {
		return nil
	}
	msgs := make([]string, len(strict))
	for i, e := range strict {
		msgs[i] = e.Error()
		if strings.HasPrefix(msgs[i], "unknown field") {
			msgs[i] += " (keys are case-sensitive)"
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

// shape lists the fields of a Kubernetes manifest MiniKu can map: a nil
// value takes anything (labels, strings), a shape is an object, a
// []shape a list of objects. Anything else is refused by name.
type shape map[string]any

var (
	metadataShape  = shape{"name": nil, "labels": nil, "namespace": nil, "annotations": nil}
	containerShape = shape{
		"name": nil, "image": nil, "command": nil, "args": nil, "imagePullPolicy": nil,
		"env":       []shape{{"name": nil, "value": nil}},
		"resources": shape{"limits": shape{"cpu": nil, "memory": nil}, "requests": shape{"cpu": nil, "memory": nil}},
	}
	podSpecShape = shape{
		"containers": []shape{containerShape}, "restartPolicy": nil, "nodeSelector": nil,
		"terminationGracePeriodSeconds": nil, "hostNetwork": nil, "nodeName": nil,
	}
	podShape = shape{"apiVersion": nil, "kind": nil, "metadata": metadataShape, "spec": podSpecShape, "status": nil}
	rsShape  = shape{"apiVersion": nil, "kind": nil, "metadata": metadataShape, "status": nil, "spec": shape{
		"replicas": nil, "selector": shape{"matchLabels": nil},
		"template": shape{"metadata": metadataShape, "spec": podSpecShape},
	}}
)

// checkShape names the first field of v that s does not have.
func checkShape(path string, v any, s shape) error {
	m, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return nil
		}
		return fmt.Errorf("%s: want an object", path)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := strings.TrimPrefix(path+"."+k, ".")
		sub, known := s[k]
		if !known {
			return fmt.Errorf("%s: not supported by MiniKu (no equivalent field); remove it", p)
		}
		switch sub := sub.(type) {
		case shape:
			if err := checkShape(p, m[k], sub); err != nil {
				return err
			}
		case []shape:
			list, ok := m[k].([]any)
			if !ok && m[k] != nil {
				return fmt.Errorf("%s: want a list", p)
			}
			for i, item := range list {
				if err := checkShape(fmt.Sprintf("%s[%d]", p, i), item, sub[0]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

type k8sMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type k8sContainer struct {
	Name      string           `json:"name"`
	Image     string           `json:"image"`
	Command   []string         `json:"command"`
	Args      []string         `json:"args"`
	Env       []schemas.EnvVar `json:"env"`
	Resources struct {
		Limits   schemas.ResourceList `json:"limits"`
		Requests schemas.ResourceList `json:"requests"`
	} `json:"resources"`
}

type k8sPodSpec struct {
	Containers                    []k8sContainer        `json:"containers"`
	RestartPolicy                 schemas.RestartPolicy `json:"restartPolicy"`
	NodeSelector                  map[string]string     `json:"nodeSelector"`
	TerminationGracePeriodSeconds *int64                `json:"terminationGracePeriodSeconds"`
	HostNetwork                   bool                  `json:"hostNetwork"`
	NodeName                      string                `json:"nodeName"`
}

type k8sPod struct {
	Metadata k8sMeta    `json:"metadata"`
	Spec     k8sPodSpec `json:"spec"`
}

type k8sReplicaSet struct {
	Metadata k8sMeta `json:"metadata"`
	Spec     struct {
		Replicas *int `json:"replicas"`
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Template struct {
			Metadata k8sMeta    `json:"metadata"`
			Spec     k8sPodSpec `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

func convertK8s(m map[string]any, kind string) (object, error) {
	api, _ := m["apiVersion"].(string)
	var o object
	var s shape
	switch {
	case kind == "Pod" && api == "v1":
		s = podShape
	case kind == "ReplicaSet" && api == "apps/v1":
		s = rsShape
	case kind == "Deployment":
		return o, errors.New("kind Deployment is not supported by MiniKu: use apps/v1 ReplicaSet (same replicas, selector and template)")
	case kind == "Pod" || kind == "ReplicaSet":
		return o, fmt.Errorf("apiVersion %q of a %s: want v1 Pod or apps/v1 ReplicaSet", api, kind)
	default:
		return o, fmt.Errorf("kind %q (apiVersion %s) is not supported by MiniKu: want v1 Pod or apps/v1 ReplicaSet", kind, api)
	}
	if err := checkShape("", m, s); err != nil {
		return o, fmt.Errorf("%s: %w", kind, err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		return o, err
	}
	// checkShape has refused unknown keys by their exact name already.
	if kind == "Pod" {
		var kp k8sPod
		if err := strictJSON(data, &kp, k8sjson.DisallowDuplicateFields); err != nil {
			return o, fmt.Errorf("Pod: %w", err)
		}
		if err := checkMeta("metadata", kp.Metadata); err != nil {
			return o, fmt.Errorf("Pod: %w", err)
		}
		name, spec, err := podSpecFromK8s("spec", kp.Spec)
		if err != nil {
			return o, fmt.Errorf("Pod %s: %w", kp.Metadata.Name, err)
		}
		o.Pod = &schemas.Pod{
			ObjectMeta:    schemas.ObjectMeta{Name: kp.Metadata.Name, Labels: kp.Metadata.Labels},
			ContainerName: name, PodSpec: spec, NodeName: kp.Spec.NodeName,
		}
		if err := o.Pod.Validate(); err != nil {
			return o, fmt.Errorf("Pod %s: %w", kp.Metadata.Name, err)
		}
		return o, nil
	}
	var kr k8sReplicaSet
	if err := strictJSON(data, &kr, k8sjson.DisallowDuplicateFields); err != nil {
		return o, fmt.Errorf("ReplicaSet: %w", err)
	}
	if err := checkMeta("metadata", kr.Metadata); err != nil {
		return o, fmt.Errorf("ReplicaSet: %w", err)
	}
	if kr.Spec.Template.Spec.NodeName != "" {
		return o, fmt.Errorf("ReplicaSet %s: spec.template.spec.nodeName: not supported by MiniKu for replicasets (use nodeSelector)", kr.Metadata.Name)
	}
	if len(kr.Spec.Selector.MatchLabels) == 0 {
		return o, fmt.Errorf("ReplicaSet %s: spec.selector.matchLabels: required", kr.Metadata.Name)
	}
	name, spec, err := podSpecFromK8s("spec.template.spec", kr.Spec.Template.Spec)
	if err != nil {
		return o, fmt.Errorf("ReplicaSet %s: %w", kr.Metadata.Name, err)
	}
	replicas := 1 // Kubernetes' default
	if kr.Spec.Replicas != nil {
		replicas = *kr.Spec.Replicas
	}
	o.RS = &schemas.ReplicaSet{
		ObjectMeta:   schemas.ObjectMeta{Name: kr.Metadata.Name, Labels: kr.Metadata.Labels},
		DesiredCount: replicas,
		Selector:     kr.Spec.Selector.MatchLabels,
		Template:     schemas.PodTemplate{Name: name, Labels: kr.Spec.Template.Metadata.Labels, PodSpec: spec},
	}
	for k, v := range o.RS.Selector {
		if l, ok := o.RS.Template.Labels[k]; len(o.RS.Template.Labels) > 0 && (!ok || l != v) {
			return o, fmt.Errorf("ReplicaSet %s: spec.template.metadata.labels: must match spec.selector.matchLabels (%s=%s)", kr.Metadata.Name, k, v)
		}
	}
	if err := o.RS.Validate(); err != nil {
		return o, fmt.Errorf("ReplicaSet %s: %w", kr.Metadata.Name, err)
	}
	return o, nil
}

func checkMeta(path string, m k8sMeta) error {
	if m.Namespace != "" && m.Namespace != "default" {
		return fmt.Errorf("%s.namespace %q: MiniKu has no namespaces (only \"default\" is accepted)", path, m.Namespace)
	}
	return nil
}

// podSpecFromK8s maps a one-container Kubernetes pod spec. Resources:
// MiniKu's requests are its limits (Guaranteed), so limits win and
// requests are used when there are no limits.
func podSpecFromK8s(path string, ks k8sPodSpec) (string, schemas.PodSpec, error) {
	var spec schemas.PodSpec
	if len(ks.Containers) != 1 {
		return "", spec, fmt.Errorf("%s.containers: MiniKu pods run exactly one container, this has %d", path, len(ks.Containers))
	}
	c := ks.Containers[0]
	cp := path + ".containers[0]"
	if len(c.Args) > 0 && len(c.Command) == 0 {
		return "", spec, fmt.Errorf("%s.args without command: MiniKu cannot append arguments to the image's entrypoint; give the whole command in command", cp)
	}
	spec.Image = c.Image
	if len(c.Command) > 0 {
		spec.Command = append(slices.Clone(c.Command), c.Args...)
	}
	spec.Env = c.Env
	res := c.Resources.Limits
	if res.CPU == "" {
		res.CPU = c.Resources.Requests.CPU
	}
	if res.Memory == "" {
		res.Memory = c.Resources.Requests.Memory
	}
	spec.Resources = res
	spec.RestartPolicy = ks.RestartPolicy
	spec.NodeSelector = ks.NodeSelector
	spec.TerminationGracePeriodSeconds = ks.TerminationGracePeriodSeconds
	spec.HostNetwork = ks.HostNetwork
	return c.Name, spec, nil
}

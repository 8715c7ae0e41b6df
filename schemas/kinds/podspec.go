package kinds

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/schemas"
)

// Refused pod spec fields. FromKube refuses, naming the path, every pod
// (and replicaset template) spec field except those below; a field set
// to the value kube-apiserver's defaulting gives it (and ToKube shows)
// is accepted, so what a client read can be written back.
//
// Kept: spec.containers[0].{name, image, command, args (only with
// command: the command is command followed by args), env[*].{name,
// value}, resources.limits.{cpu, memory, ephemeral-storage,
// miniku.io/pids} (requests only equal to limits), ports[*].{name,
// containerPort, protocol}}, spec.{nodeName, nodeSelector,
// restartPolicy, hostNetwork, terminationGracePeriodSeconds}.
//
// Accepted, not stored: imagePullPolicy Always or IfNotPresent. MiniKu's
// kubelet pulls by the image reference, which is Kubernetes' default
// policy: :latest or no tag is resolved at the registry at every start
// (Always), any other tag or a digest is pulled only if not present
// (IfNotPresent), and ToKube shows that default. Either value is taken
// for any image because a patch that changes only the image (kubectl
// set image, on a pod or a replicaset template) carries the old image's
// default over, as Kubernetes does (it never re-defaults a set field),
// and FromKube cannot tell a carried value from a chosen one. So Always
// on a tagged image means here "pull if not present": a tag pushed again
// at the registry is not fetched by a node that has it; IfNotPresent on
// :latest still asks the registry. Never is refused: the kubelet cannot
// decline to pull.
//
// Accepted at their default only: terminationMessagePath
// (/dev/termination-log), terminationMessagePolicy (File), dnsPolicy
// (ClusterFirst), schedulerName (default-scheduler), securityContext
// ({}), enableServiceLinks (true), serviceAccountName and
// serviceAccount (default), priority (0), preemptionPolicy
// (PreemptLowerPriority), tolerations (the not-ready and unreachable
// NoExecute ones for 300 s that Kubernetes adds), ports[*].hostPort
// (equal to containerPort with hostNetwork, else absent).
//
// Refused: containers[1:] (multi-container pods are later work),
// initContainers, ephemeralContainers, args without command (needs the
// image's entrypoint: later), env[*].valueFrom, envFrom, volumeMounts,
// volumes, livenessProbe, readinessProbe, startupProbe, lifecycle,
// workingDir, securityContext settings, stdin/tty, resize policy,
// restartPolicy of a container, resources other than the above or
// requests differing from limits, resources.claims, ports[*].hostIP,
// affinity, tolerations other than the default, imagePullSecrets,
// hostname, subdomain, hostPID, hostIPC, shareProcessNamespace,
// dnsConfig, other dnsPolicy, readinessGates, runtimeClassName,
// overhead, topologySpreadConstraints, priorityClassName,
// activeDeadlineSeconds, automountServiceAccountToken, nodeName set on
// update, os, hostUsers, schedulingGates, resourceClaims, resources (pod
// level), setHostnameAsFQDN, hostAliases.

// Defaults kube-apiserver fills in a pod spec.
const (
	defaultSchedulerName          = corev1.DefaultSchedulerName
	defaultServiceAccount         = "default"
	defaultTerminationMessagePath = corev1.TerminationMessagePathDefault
	// ResourcePids is a container's pids limit, as an extended resource.
	ResourcePids corev1.ResourceName = "miniku.io/pids"
	// defaultTolerationSeconds is what the DefaultTolerationSeconds
	// admission plugin gives pods for not-ready and unreachable nodes.
	defaultTolerationSeconds = 300
)

func defaultTolerations() []corev1.Toleration {
	s := int64(defaultTolerationSeconds)
	return []corev1.Toleration{
		{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &s},
		{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &s},
	}
}

// defaultPullPolicy is Kubernetes' default for image.
func defaultPullPolicy(image string) corev1.PullPolicy {
	ref := image
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		return corev1.PullIfNotPresent // pinned by digest
	}
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		ref = ref[i+1:]
	}
	if _, tag, ok := strings.Cut(ref, ":"); !ok || tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// podSpecToKube is a stored pod spec as Kubernetes shows one.
func podSpecToKube(s *schemas.PodSpec, containerName, nodeName string) (corev1.PodSpec, error) {
	c := corev1.Container{
		Name: containerName, Image: s.Image, Command: slices.Clone(s.Command),
		ImagePullPolicy:          defaultPullPolicy(s.Image),
		TerminationMessagePath:   defaultTerminationMessagePath,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
	}
	for _, e := range s.Env {
		c.Env = append(c.Env, corev1.EnvVar{Name: e.Name, Value: e.Value})
	}
	limits, err := nodeResources(schemas.ResourceList{CPU: s.Resources.CPU, Memory: s.Resources.Memory, EphemeralStorage: s.Resources.EphemeralStorage})
	if err != nil {
		return corev1.PodSpec{}, err
	}
	if s.Resources.Pids != 0 {
		limits[ResourcePids] = *resource.NewQuantity(s.Resources.Pids, resource.DecimalSI)
	}
	if len(limits) > 0 {
		// Kubernetes defaults requests to limits; MiniKu enforces them as one.
		c.Resources = corev1.ResourceRequirements{Limits: limits, Requests: limits.DeepCopy()}
	}
	for _, p := range s.Ports {
		kp := corev1.ContainerPort{Name: p.Name, ContainerPort: p.ContainerPort, Protocol: corev1.Protocol(p.Protocol)}
		if kp.Protocol == "" {
			kp.Protocol = corev1.ProtocolTCP
		}
		if s.HostNetwork {
			kp.HostPort = p.ContainerPort
		}
		c.Ports = append(c.Ports, kp)
	}
	grace := int64(schemas.DefaultTerminationGracePeriod.Seconds())
	if s.TerminationGracePeriodSeconds != nil {
		grace = *s.TerminationGracePeriodSeconds
	}
	restart := corev1.RestartPolicy(s.RestartPolicy)
	if restart == "" {
		restart = corev1.RestartPolicyAlways
	}
	preempt := corev1.PreemptLowerPriority
	return corev1.PodSpec{
		Containers:                    []corev1.Container{c},
		RestartPolicy:                 restart,
		TerminationGracePeriodSeconds: &grace,
		DNSPolicy:                     corev1.DNSClusterFirst,
		NodeSelector:                  maps.Clone(s.NodeSelector),
		ServiceAccountName:            defaultServiceAccount,
		DeprecatedServiceAccount:      defaultServiceAccount,
		NodeName:                      nodeName,
		HostNetwork:                   s.HostNetwork,
		SecurityContext:               &corev1.PodSecurityContext{},
		SchedulerName:                 defaultSchedulerName,
		Tolerations:                   defaultTolerations(),
		Priority:                      ptrTo(int32(0)),
		EnableServiceLinks:            ptrTo(true),
		PreemptionPolicy:              &preempt,
	}, nil
}

// podSpecFromKube is the stored spec of a wire pod spec at path p. It
// consumes what it keeps or accepts from a copy and refuses whatever is
// left, so a field added to k8s.io/api later is refused too.
func podSpecFromKube(in *corev1.PodSpec, p *field.Path) (spec schemas.PodSpec, containerName, nodeName string, errs field.ErrorList) {
	k := in.DeepCopy()
	spec.NodeSelector, k.NodeSelector = maps.Clone(k.NodeSelector), nil
	nodeName, k.NodeName = k.NodeName, ""
	spec.HostNetwork, k.HostNetwork = k.HostNetwork, false
	spec.RestartPolicy, k.RestartPolicy = schemas.RestartPolicy(k.RestartPolicy), ""
	if spec.RestartPolicy == schemas.RestartAlways {
		spec.RestartPolicy = "" // the stored default
	}
	if g := k.TerminationGracePeriodSeconds; g != nil {
		if *g != int64(schemas.DefaultTerminationGracePeriod.Seconds()) {
			spec.TerminationGracePeriodSeconds = ptrTo(*g)
		}
		k.TerminationGracePeriodSeconds = nil
	}
	if k.DNSPolicy == corev1.DNSClusterFirst {
		k.DNSPolicy = ""
	}
	if k.SchedulerName == defaultSchedulerName {
		k.SchedulerName = ""
	}
	if k.SecurityContext != nil && reflect.ValueOf(*k.SecurityContext).IsZero() {
		k.SecurityContext = nil
	}
	if k.EnableServiceLinks != nil && *k.EnableServiceLinks {
		k.EnableServiceLinks = nil
	}
	if k.ServiceAccountName == defaultServiceAccount {
		k.ServiceAccountName = ""
	}
	if k.DeprecatedServiceAccount == defaultServiceAccount || k.DeprecatedServiceAccount == in.ServiceAccountName {
		k.DeprecatedServiceAccount = ""
	}
	if len(k.Tolerations) == 0 || reflect.DeepEqual(k.Tolerations, defaultTolerations()) {
		k.Tolerations = nil
	}
	if k.Priority != nil && *k.Priority == 0 {
		k.Priority = nil
	}
	if k.PreemptionPolicy != nil && *k.PreemptionPolicy == corev1.PreemptLowerPriority {
		k.PreemptionPolicy = nil
	}
	cp := p.Child("containers")
	switch len(k.Containers) {
	case 0:
		errs = append(errs, field.Required(cp, "a pod runs exactly one container"))
	default:
		for i := 1; i < len(k.Containers); i++ {
			errs = append(errs, notSupported(cp.Index(i), "a pod runs exactly one container; multi-container pods are later work"))
		}
		var cerrs field.ErrorList
		containerName, cerrs = containerFromKube(&k.Containers[0], &spec, cp.Index(0))
		errs = append(errs, cerrs...)
	}
	k.Containers = nil
	errs = append(errs, leftovers(reflect.ValueOf(k).Elem(), p)...)
	return spec, containerName, nodeName, errs
}

func containerFromKube(c *corev1.Container, spec *schemas.PodSpec, p *field.Path) (string, field.ErrorList) {
	var errs field.ErrorList
	name := c.Name
	spec.Image = c.Image
	switch {
	case len(c.Command) > 0:
		spec.Command = append(slices.Clone(c.Command), c.Args...)
	case len(c.Args) > 0:
		errs = append(errs, notSupported(p.Child("args"), "args without command need the image's entrypoint; give command (and args) for now"))
	}
	c.Name, c.Image, c.Command, c.Args = "", "", nil, nil
	for i, e := range c.Env {
		if e.ValueFrom != nil {
			errs = append(errs, notSupported(p.Child("env").Index(i).Child("valueFrom"), "only name and value"))
		}
		spec.Env = append(spec.Env, schemas.EnvVar{Name: e.Name, Value: e.Value})
	}
	c.Env = nil
	errs = append(errs, resourcesFromKube(&c.Resources, &spec.Resources, p.Child("resources"))...)
	c.Resources = corev1.ResourceRequirements{}
	for i, kp := range c.Ports {
		pp := p.Child("ports").Index(i)
		if kp.HostPort != 0 && !(spec.HostNetwork && kp.HostPort == kp.ContainerPort) {
			errs = append(errs, notSupported(pp.Child("hostPort"), "ports are not published; with hostNetwork the pod listens on the host already"))
		}
		if kp.HostIP != "" {
			errs = append(errs, notSupported(pp.Child("hostIP"), ""))
		}
		proto := string(kp.Protocol)
		if proto == string(corev1.ProtocolTCP) {
			proto = ""
		}
		spec.Ports = append(spec.Ports, schemas.ContainerPort{Name: kp.Name, ContainerPort: kp.ContainerPort, Protocol: proto})
	}
	c.Ports = nil
	if c.ImagePullPolicy == corev1.PullNever {
		errs = append(errs, notSupported(p.Child("imagePullPolicy"),
			"MiniKu's kubelet pulls an image it does not have; use IfNotPresent (or leave it out)"))
	}
	c.ImagePullPolicy = ""
	if c.TerminationMessagePath == defaultTerminationMessagePath {
		c.TerminationMessagePath = ""
	}
	if c.TerminationMessagePolicy == corev1.TerminationMessageReadFile {
		c.TerminationMessagePolicy = ""
	}
	errs = append(errs, leftovers(reflect.ValueOf(c).Elem(), p)...)
	return name, errs
}

// resourcesFromKube keeps limits MiniKu enforces; requests must equal
// them because MiniKu reserves and enforces one amount.
func resourcesFromKube(r *corev1.ResourceRequirements, out *schemas.ResourceList, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, name := range slices.Sorted(maps.Keys(r.Limits)) {
		q := r.Limits[name]
		lp := p.Child("limits").Key(string(name))
		switch name {
		case corev1.ResourceCPU:
			out.CPU = quantityString(q, true)
		case corev1.ResourceMemory:
			out.Memory = quantityString(q, false)
		case corev1.ResourceEphemeralStorage:
			out.EphemeralStorage = quantityString(q, false)
		case ResourcePids:
			out.Pids = q.Value()
		default:
			errs = append(errs, notSupported(lp, "MiniKu enforces cpu, memory, ephemeral-storage and "+string(ResourcePids)))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Requests)) {
		q := r.Requests[name]
		l, ok := r.Limits[name]
		if !ok || q.Cmp(l) != 0 {
			errs = append(errs, field.Invalid(p.Child("requests").Key(string(name)), q.String(),
				fmt.Sprintf("must equal limits.%s: MiniKu enforces requests as limits (set both, or only limits)", name)))
		}
	}
	if len(r.Claims) > 0 {
		errs = append(errs, notSupported(p.Child("claims"), ""))
	}
	return errs
}

// leftovers refuses every field of struct v still set.
func leftovers(v reflect.Value, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || v.Field(i).IsZero() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			name = f.Name
		}
		errs = append(errs, notSupported(p.Child(name), ""))
	}
	return errs
}

// specRename maps the seed's pod spec field names under prefix to their
// Kubernetes paths under kube (a pod spec path).
func specRename(prefix, kube string) map[string]string {
	c := kube + ".containers[0]"
	return map[string]string{
		prefix + "image": c + ".image", prefix + "command": c + ".command", prefix + "env": c + ".env",
		prefix + "resources": c + ".resources.limits", prefix + "resources.pids": c + ".resources.limits[" + string(ResourcePids) + "]",
		prefix + "nodeSelector": kube + ".nodeSelector", prefix + "restartPolicy": kube + ".restartPolicy",
		prefix + "terminationGracePeriodSeconds": kube + ".terminationGracePeriodSeconds",
	}
}

// validatePorts checks what the seed's Validate does not know yet.
func validatePorts(ports []schemas.ContainerPort, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, port := range ports {
		pp := p.Index(i)
		if port.ContainerPort < 1 || port.ContainerPort > 65535 {
			errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, "must be between 1 and 65535"))
		}
		switch port.Protocol {
		case "", "TCP", "UDP", "SCTP":
		default:
			errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol, []string{"TCP", "UDP", "SCTP"}))
		}
		if port.Name != "" {
			if len(port.Name) > 15 || schemas.ValidateName("", port.Name, 15) != nil {
				errs = append(errs, field.Invalid(pp.Child("name"), port.Name, "must be a DNS label of at most 15 characters"))
			}
			if seen[port.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
			}
			seen[port.Name] = true
		}
	}
	return errs
}

// normalSpec is s with every default spelled one way (the 30 s grace
// period as nil, Always as "", TCP as "", empty lists and maps as nil),
// so a spec read through the Kubernetes view compares equal to the one
// stored whichever way a writer spelled it.
func normalSpec(s *schemas.PodSpec) schemas.PodSpec {
	n := *s.DeepCopyPodSpec()
	if n.TerminationGracePeriodSeconds != nil && *n.TerminationGracePeriodSeconds == int64(schemas.DefaultTerminationGracePeriod.Seconds()) {
		n.TerminationGracePeriodSeconds = nil
	}
	if n.RestartPolicy == schemas.RestartAlways {
		n.RestartPolicy = ""
	}
	for i := range n.Ports {
		if n.Ports[i].Protocol == string(corev1.ProtocolTCP) {
			n.Ports[i].Protocol = ""
		}
	}
	if len(n.Ports) == 0 {
		n.Ports = nil
	}
	if len(n.Env) == 0 {
		n.Env = nil
	}
	if len(n.Command) == 0 {
		n.Command = nil
	}
	if len(n.NodeSelector) == 0 {
		n.NodeSelector = nil
	}
	return n
}

// sameSpec reports whether a and b say the same.
func sameSpec(a, b *schemas.PodSpec) bool {
	na, nb := normalSpec(a), normalSpec(b)
	return reflect.DeepEqual(&na, &nb)
}

// quantityString is q as MiniKu stores quantities: the canonical form,
// but never an exponent ("1e3"), which the stored form does not take.
func quantityString(q resource.Quantity, milli bool) string {
	if q.Format != resource.DecimalExponent {
		return q.String()
	}
	if milli {
		return resource.NewMilliQuantity(q.MilliValue(), resource.DecimalSI).String()
	}
	return resource.NewQuantity(q.Value(), resource.DecimalSI).String()
}

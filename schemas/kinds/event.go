package kinds

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/schemas"
)

// Event is the declaration of v1 Event: the EVENTS stream's records,
// read-only (MiniKu's components write them on the bus).
var Event = &Def[*schemas.ObjectEvent, *corev1.Event]{
	Meta: Info{
		Kind: "Event", ListKind: "EventList", GroupVersion: schema.GroupVersion{Version: "v1"},
		Resource: "events", Singular: "event", ShortNames: []string{"ev"}, Namespaced: true,
		Verbs: []string{"get", "list", "watch"},
	},
	New:     func() *schemas.ObjectEvent { return &schemas.ObjectEvent{} },
	NewK:    func() *corev1.Event { return &corev1.Event{} },
	NewList: func() runtime.Object { return &corev1.EventList{} },
	To:      EventToKube,
	From:    EventFromKube,
	Columns: []metav1.TableColumnDefinition{
		{Name: "Last Seen", Type: "string", Description: corev1.Event{}.SwaggerDoc()["lastTimestamp"]},
		{Name: "Type", Type: "string", Description: corev1.Event{}.SwaggerDoc()["type"]},
		{Name: "Reason", Type: "string", Description: corev1.Event{}.SwaggerDoc()["reason"]},
		{Name: "Object", Type: "string", Description: corev1.Event{}.SwaggerDoc()["involvedObject"]},
		{Name: "Subobject", Type: "string", Priority: 1, Description: corev1.ObjectReference{}.SwaggerDoc()["fieldPath"]},
		{Name: "Source", Type: "string", Priority: 1, Description: corev1.Event{}.SwaggerDoc()["source"]},
		{Name: "Message", Type: "string", Description: corev1.Event{}.SwaggerDoc()["message"]},
		{Name: "First Seen", Type: "string", Priority: 1, Description: corev1.Event{}.SwaggerDoc()["firstTimestamp"]},
		{Name: "Count", Type: "string", Priority: 1, Description: corev1.Event{}.SwaggerDoc()["count"]},
		{Name: "Name", Type: "string", Priority: 1, Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]},
	},
	Row: eventRow,
}

// involvedAPIVersion is the API version of the kinds events are about.
func involvedAPIVersion(kind string) (apiVersion string, namespaced bool) {
	switch kind {
	case schemas.KindReplicaSet:
		return "apps/v1", true
	case schemas.KindNode, "Namespace":
		return "v1", false
	}
	return "v1", true
}

// EventName is an event's name: its object and its position in the
// stream, stable across reads.
func EventName(ev *schemas.ObjectEvent) string { return ev.MetaName() }

// EventToKube is ev as a core/v1 Event, in namespace default (as
// Kubernetes records node events there too).
func EventToKube(ev *schemas.ObjectEvent) (*corev1.Event, error) {
	apiVersion, namespaced := involvedAPIVersion(ev.Kind)
	obj := corev1.ObjectReference{Kind: ev.Kind, Name: ev.Name, APIVersion: apiVersion}
	if namespaced {
		obj.Namespace = DefaultNamespace
	}
	at := kubeTime(ev.Time)
	return &corev1.Event{
		TypeMeta: metav1.TypeMeta{Kind: "Event", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: EventName(ev), Namespace: DefaultNamespace, CreationTimestamp: at,
			UID: types.UID(fmt.Sprintf("%032x", ev.Seq)), ResourceVersion: metaRV(ev.Seq)},
		InvolvedObject:      obj,
		Reason:              ev.Reason,
		Message:             ev.Message,
		Source:              corev1.EventSource{Component: ev.Component, Host: ev.Node},
		FirstTimestamp:      at,
		LastTimestamp:       at,
		EventTime:           metav1.NewMicroTime(ev.Time),
		Count:               1,
		Type:                ev.Type,
		ReportingController: ev.Component,
		ReportingInstance:   ev.Node,
	}, nil
}

// EventFromKube reads an event back into the stored type; events are
// never written through the API (the declaration lists no write verb),
// so this serves tests and typed readers.
func EventFromKube(k *corev1.Event) (*schemas.ObjectEvent, field.ErrorList) {
	ev := &schemas.ObjectEvent{Type: k.Type, Reason: k.Reason, Kind: k.InvolvedObject.Kind, Name: k.InvolvedObject.Name,
		Node: k.Source.Host, Component: k.Source.Component, Message: k.Message}
	switch {
	case !k.EventTime.IsZero():
		ev.Time = k.EventTime.UTC()
	case !k.LastTimestamp.IsZero():
		ev.Time = k.LastTimestamp.UTC()
	}
	var errs field.ErrorList
	errs = append(errs, checkNamespace(k.Namespace, true)...)
	if i := strings.LastIndexByte(k.Name, '.'); i >= 0 {
		seqS, indexS, hasIndex := strings.Cut(k.Name[i+1:], "-")
		if seq, err := strconv.ParseUint(seqS, 16, 64); err == nil {
			ev.Seq = seq
		}
		if index, err := strconv.Atoi(indexS); hasIndex && err == nil {
			ev.Index = index
		}
	}
	return ev, errs
}

func eventRow(ev *corev1.Event) []any {
	last := ev.LastTimestamp
	if last.IsZero() {
		last = metav1.Time(ev.EventTime)
	}
	first := ev.FirstTimestamp
	if first.IsZero() {
		first = last
	}
	lastSeen := age(last)
	if ev.Count > 1 {
		lastSeen = Ago{Format: fmt.Sprintf("%%s (x%d over %%s)", ev.Count), Times: []time.Time{last.Time, first.Time}}
	}
	source := ev.Source.Component
	if ev.Source.Host != "" {
		source += ", " + ev.Source.Host
	}
	obj := strings.ToLower(ev.InvolvedObject.Kind) + "/" + ev.InvolvedObject.Name
	return []any{lastSeen, ev.Type, ev.Reason, obj, ev.InvolvedObject.FieldPath, source, ev.Message, age(first), int64(ev.Count), ev.Name}
}

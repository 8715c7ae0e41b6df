// Package kube serves the Kubernetes API (discovery, /version, and the
// REST verbs of every kind declared in schemas/kinds) over a Store the
// apiserver adapts to its buckets and caches, so kubectl and client-go
// work against MiniKu. It is generic: a kind's names, rules, conversion
// and table come from its declaration, never from code here.
//
// Wire objects are the k8s.io/api types encoded as JSON; every error is a
// metav1.Status built with k8s.io/apimachinery/pkg/api/errors, as
// kube-apiserver sends it.
package kube

// Package apiserver is MiniKu's HTTP front door: it turns JSON requests into
// reads and compare-and-swap writes on the bus's KV buckets and publishes the
// matching event hints.
//
// It holds no state of its own, so any number of apiservers can run against
// one NATS cluster. Everything it writes is validated first and conditional
// on a KV revision, so a request either lands whole against the version it
// was checked against or not at all: nothing is written when a request is
// refused, and no write ever overwrites a newer one it did not see.
//
// Server-owned fields (uid, createdAt, status, counts) are always set by the
// server, whatever the client sent, so clients may PUT back what they GET.
package apiserver

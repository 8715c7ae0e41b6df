// Package schemas holds MiniKu's API objects (Pod, ReplicaSet, Node, Event),
// their validation and the one codec used for them on the bus and in KV.
//
// It has no business logic: services decide, schemas only describe and check.
// Names are DNS-1123 labels because they become KV keys, NATS subject tokens,
// file paths and container hostnames; Validate enforces that so no other
// package has to.
package schemas

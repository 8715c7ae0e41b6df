// Package bus is MiniKu's only way to talk: a NATS connection, typed
// JetStream KV buckets that hold the desired and observed state, informers
// that cache a bucket and follow it with a watch, and typed events.
//
// KV is the truth and events are hints: every write is a compare-and-swap on
// the KV revision, and every consumer can rebuild its view from KV alone.
package bus

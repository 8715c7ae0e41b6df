// Package cli implements the client subcommands of the miniku binary (get,
// apply, delete, scale, describe, logs, exec, cordon, uncordon, drain, events):
// kubectl-like commands over the HTTP API, and a live view of the bus.
package cli

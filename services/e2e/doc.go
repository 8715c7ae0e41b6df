// Package e2e holds end-to-end tests: they build the real miniku binary, run
// it as separate processes against a registry started by the test, and drive
// it over HTTP as a user would with curl.
package e2e

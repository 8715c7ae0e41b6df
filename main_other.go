//go:build !linux

package main

// nodeMain: no container runtime off Linux; `miniku runtime` is refused
// by services/cmd with the reason.
func nodeMain() {}

//go:build linux

package cmd

import "testing"

func TestUpNodeName(t *testing.T) {
	for name, want := range map[string]bool{
		"node-1": true, "node-12": true,
		"node-0": false, "node-01": false, "node-": false, "node-a": false, "worker-1": false, "hollow-1": false, "node--1": false,
	} {
		if got := upNodeName(name); got != want {
			t.Errorf("upNodeName(%q) = %v, want %v", name, got, want)
		}
	}
}

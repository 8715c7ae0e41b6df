//go:build race

package apiserver_test

// raceEnabled: the race detector slows requests several times over.
const raceEnabled = true

package runtime

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A start interrupted between the shim launching the container and
// state.json being written leaves a running container no List can see;
// SweepInterrupted must stop it and remove its directory.
func TestSweepInterrupted(t *testing.T) {
	r := mustRuntime(t, "")
	c := mustStart(t, r, Spec{ID: "interrupted", Args: []string{"sleep", "1000"}})
	_, st, err := r.getState(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	shim := st.ShimPid
	// What a kill -9 of the kubelet in that window leaves behind.
	if err := os.Remove(filepath.Join(r.dir(c.ID), stateFileName)); err != nil {
		t.Fatal(err)
	}
	if list, _ := r.List(); len(list) != 0 {
		t.Fatalf("List sees %d containers without state", len(list))
	}
	// A container with state must be left alone.
	keep := mustStart(t, r, Spec{ID: "keep", Args: []string{"sleep", "1000"}})

	swept, err := r.SweepInterrupted()
	if err != nil {
		t.Fatal(err)
	}
	if len(swept) != 1 || swept[0] != "interrupted" {
		t.Fatalf("swept %v, want [interrupted]", swept)
	}
	deadline := time.Now().Add(10 * time.Second)
	for isAlive(c.Pid, c.StartTime) || isAlive(shim, st.ShimStartTime) {
		if time.Now().After(deadline) {
			t.Fatalf("container pid %d or shim %d still alive after the sweep", c.Pid, shim)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(r.dir(c.ID)); !os.IsNotExist(err) {
		t.Fatalf("directory of the interrupted start still there: %v", err)
	}
	// Its cgroups too, though only the lost state.json named them.
	for _, d := range r.leafDirs(c.ID) {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s of the interrupted start still there: %v", d, err)
		}
	}
	if got, err := r.Get(keep.ID); err != nil || got.Status != StatusRunning {
		t.Fatalf("container with state: %+v %v", got, err)
	}
}

func isAlive(pid int, start uint64) bool {
	ok, _ := alive(pid, start)
	return ok
}

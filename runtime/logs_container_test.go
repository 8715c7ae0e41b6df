package runtime

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestReadLogsFollowsContainer follows a real container's log, written by
// the shim and rotated several times while it is read, from its first
// line until the container exits.
func TestReadLogsFollowsContainer(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	c := mustStart(t, r, Spec{ID: "follow", LogMaxBytes: 2048, Args: []string{"sh", "-c",
		`i=0; while [ $i -lt 400 ]; do echo "line $i"; i=$((i+1)); [ $((i % 20)) = 0 ] && sleep 0.05; done; echo >&2 "on stderr"`}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = r.Wait(ctx, c.ID)
	}()
	var out bytes.Buffer
	if err := ReadLogs(ctx, c.LogPath, LogOptions{Follow: true, Tail: -1, Done: done, PollInterval: 5 * time.Millisecond}, &out); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := range 400 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	want.WriteString("on stderr\n")
	if got := out.String(); got != want.String() {
		t.Errorf("followed log (%d bytes) differs from what the container wrote (%d bytes):\n%s", len(got), want.Len(), got)
	}
	// The rotation really happened, and tail counts across both files.
	if _, err := os.Stat(c.LogPath + RotatedSuffix); err != nil {
		t.Fatalf("the log was never rotated: %v", err)
	}
	var tail bytes.Buffer
	if err := ReadLogs(ctx, c.LogPath, LogOptions{Tail: 3, Timestamps: true}, &tail); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(tail.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], " line 398") || !strings.HasSuffix(lines[2], " on stderr") {
		t.Errorf("tail 3 with timestamps: %q", tail.String())
	}
	if _, err := time.Parse(time.RFC3339Nano, strings.Fields(lines[0])[0]); err != nil {
		t.Errorf("no timestamp on %q: %v", lines[0], err)
	}
}

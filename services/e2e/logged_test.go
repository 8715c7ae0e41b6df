package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// waitLogged waits until a container of pod has written s to its log: a
// pod that must outlive SIGTERM has then set its trap (the container's
// init forwards SIGTERM to the command, which dies of it without one).
func waitLogged(t *testing.T, dataDir, pod, s string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		for _, ctr := range containersOf(t, dataDir, pod) {
			if out, _ := os.ReadFile(ctr.LogPath); strings.Contains(string(out), s) {
				return nil
			}
		}
		return fmt.Errorf("pod %s has not logged %q yet", pod, s)
	})
}

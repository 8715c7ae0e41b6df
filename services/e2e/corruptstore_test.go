//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `miniku up` on a data dir whose pods stream lost a record to a damaged
// block file (28 bytes overwritten while stopped) exits at once with an
// error naming the bucket, the stream and the key, instead of starting
// caches that would wait for the bucket forever.
func TestUpReportsDamagedStore(t *testing.T) {
	dataDir := t.TempDir()
	apiAddr, natsAddr := freeAddr(t), freeAddr(t)
	args := []string{"up", "--data-dir", dataDir, "--api-addr", apiAddr, "--nats-addr", natsAddr, "--nodes", "0"}
	up := start(t, "miniku up", args...)
	a := api{t: t, base: "http://" + apiAddr}
	eventually(t, 30*time.Second, func() error {
		if code, body := a.do("POST", "/pods", `{"name":"p0","image":"busybox","command":["true"]}`); code != 201 {
			return fmt.Errorf("POST /pods: %d %s", code, body)
		}
		return nil
	})
	for i := 1; i < 5; i++ {
		if code, body := a.do("POST", "/pods", fmt.Sprintf(`{"name":"p%d","image":"busybox","command":["true"]}`, i)); code != 201 {
			t.Fatalf("POST /pods: %d %s", code, body)
		}
	}
	if err := up.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-up.done:
	case <-time.After(30 * time.Second):
		t.Fatal("up did not stop on SIGINT")
	}

	blks, _ := filepath.Glob(filepath.Join(dataDir, "nats", "jetstream", "$G", "streams", "KV_pods", "msgs", "*.blk"))
	damaged := false
	for _, blk := range blks {
		data, err := os.ReadFile(blk)
		if err != nil {
			t.Fatal(err)
		}
		subj := []byte("$KV.pods.p3")
		// The last record of p3 is its live one (the scheduler wrote its
		// status after the create).
		if at := bytes.LastIndex(data, subj); at >= 0 && at+len(subj)+4+28 <= len(data) {
			at += len(subj) + 4
			copy(data[at:at+28], bytes.Repeat([]byte{0xab}, 28))
			if err := os.WriteFile(blk, data, 0o600); err != nil {
				t.Fatal(err)
			}
			damaged = true
		}
	}
	if !damaged {
		t.Fatalf("no record of p3 in %v", blks)
	}

	begin := time.Now()
	again := start(t, "miniku up again", args...)
	select {
	case <-again.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("up on a damaged store still runs after 60 s:\n%s", again.output())
	}
	out := again.output()
	if again.cmd.ProcessState.Success() {
		t.Fatalf("up on a damaged store exited 0:\n%s", out)
	}
	for _, want := range []string{"store corrupt", "bucket pods", "KV_pods", "(p3)", "miniku down --purge"} {
		if !strings.Contains(out, want) {
			t.Fatalf("up's error does not say %q:\n%s", want, out)
		}
	}
	t.Logf("up exited after %v: %s", time.Since(begin).Round(time.Millisecond), lastLine(out))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

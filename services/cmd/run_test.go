//go:build linux

package cmd

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
)

// Help asked for and the version are the command's output: stdout, exit 0.
func TestHelpAndVersionOnStdout(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"version"}} {
		var out, errb bytes.Buffer
		if err := Run(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		want := "usage: miniku"
		if args[0] == "version" {
			want = "miniku "
			if !strings.Contains(out.String(), runtime.Version()) {
				t.Errorf("version %q lacks the Go version", out.String())
			}
		}
		if !strings.HasPrefix(out.String(), want) || errb.Len() != 0 {
			t.Errorf("%v: stdout %q, stderr %q", args, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"nosuch"}, &out, &errb); err == nil || out.Len() != 0 || !strings.Contains(errb.String(), "usage") {
		t.Errorf("unknown command: err %v, stdout %q, stderr %q", err, out.String(), errb.String())
	}
}

//go:build linux

package cmd

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestNATSSyncFlag(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		always   bool
		interval time.Duration
		bad      bool
	}{
		{nil, false, time.Second, false},
		{[]string{"--nats-sync", "always"}, true, 0, false},
		{[]string{"--nats-sync", "250ms"}, false, 250 * time.Millisecond, false},
		{[]string{"--nats-sync", "never"}, false, 0, true},
		{[]string{"--nats-sync", "0s"}, false, 0, true},
		{[]string{"--nats-sync", "1h"}, false, 0, true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		s := syncFlag(fs)
		err := fs.Parse(tc.args)
		if tc.bad {
			if err == nil {
				t.Errorf("%v: accepted, want an error", tc.args)
			}
			continue
		}
		if err != nil || s.always != tc.always || s.interval != tc.interval {
			t.Errorf("%v: always=%v interval=%v err=%v, want always=%v interval=%v", tc.args, s.always, s.interval, err, tc.always, tc.interval)
		}
	}
}

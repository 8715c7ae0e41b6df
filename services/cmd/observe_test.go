//go:build linux

package cmd

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestLogFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		wantDebug bool
		json      bool
		err       string
	}{
		{args: nil},
		{args: []string{"--log-format", "json"}, json: true},
		{args: []string{"--v", "1"}, wantDebug: true},
		{args: []string{"--v=2", "--log-format=json"}, wantDebug: true, json: true},
		{args: []string{"--log-level", "debug"}, wantDebug: true},
		{args: []string{"--log-format", "xml"}, err: "--log-format"},
		{args: []string{"--v", "-1"}, err: "--v"},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		var c common
		c.register(fs, false)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		log, err := c.logger(&buf)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		log.Debug("dbg", "component", "test")
		log.Info("inf", "component", "test", "pod", "p", "node", "n")
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if got := len(lines) == 2; got != tc.wantDebug {
			t.Errorf("%v: debug logged = %v, want %v:\n%s", tc.args, got, tc.wantDebug, buf.String())
		}
		var rec map[string]any
		isJSON := json.Unmarshal([]byte(lines[len(lines)-1]), &rec) == nil
		if isJSON != tc.json {
			t.Errorf("%v: JSON = %v, want %v: %s", tc.args, isJSON, tc.json, lines[len(lines)-1])
		}
		if isJSON && (rec["component"] != "test" || rec["pod"] != "p" || rec["node"] != "n" || rec["level"] != slog.LevelInfo.String()) {
			t.Errorf("%v: record %v", tc.args, rec)
		}
	}
}

func TestMetricsListenAddr(t *testing.T) {
	for in, want := range map[string]string{":9091": "127.0.0.1:9091", "0.0.0.0:9091": "0.0.0.0:9091", "[::1]:1": "[::1]:1"} {
		if got, err := metricsListenAddr(in); err != nil || got != want {
			t.Errorf("metricsListenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := metricsListenAddr("9091"); err == nil {
		t.Error("metricsListenAddr(9091): no error for an address without a port")
	}
}

// --pprof serves profiles on a loopback metrics address and refuses any
// other: profiles hold memory contents.
func TestPprofLoopbackOnly(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	o := obsFlags{metricsAddr: "0.0.0.0:0", pprof: true}
	if stop, err := o.serveMetrics(log); err == nil {
		stop()
		t.Fatal("--pprof on 0.0.0.0 was accepted")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o = obsFlags{metricsAddr: addr, pprof: true}
	stop, err := o.serveMetrics(log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /debug/pprof/cmdline: %s", resp.Status)
	}
}

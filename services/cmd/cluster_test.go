//go:build linux

package cmd

import (
	"flag"
	"strings"
	"testing"
)

func TestParseJoinToken(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	tok, err := parseJoinToken("K10" + hash + "::server:s3cret\n")
	if err != nil || tok.caHash != hash || tok.secret != "s3cret" || tok.String() != "K10"+hash+"::server:s3cret" {
		t.Fatalf("parse: %+v %v", tok, err)
	}
	for _, bad := range []string{"", "s3cret", "K10" + hash + "::node:s3cret", "K10" + hash + "::server:", "K10abc::server:x", "K10" + strings.Repeat("zz", 32) + "::server:x"} {
		if _, err := parseJoinToken(bad); err == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
}

func TestClusterFlags(t *testing.T) {
	resolve := func(natsAddr string, args ...string) (*clusterConfig, error) {
		fs := flag.NewFlagSet("up", flag.ContinueOnError)
		f := registerClusterFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.resolve(natsAddr)
	}
	// One host: no cluster, whatever the address.
	if cc, err := resolve("127.0.0.1:4222"); cc != nil || err != nil {
		t.Fatalf("no cluster flags: %+v %v", cc, err)
	}
	cc, err := resolve("10.0.0.1:4222", "--cluster-init", "--node-name", "a1")
	if err != nil || cc.nodeName != "a1" || cc.clusterAddr != "10.0.0.1:6222" || cc.joinAddr != "10.0.0.1:9345" {
		t.Fatalf("defaults: %+v %v", cc, err)
	}
	for _, c := range []struct {
		nats string
		args []string
		want string
	}{
		{"10.0.0.1:4222", []string{"--cluster-init", "--node-name", "Node_1"}, "--node-name"},
		{"127.0.0.1:4222", []string{"--cluster-init", "--node-name", "a"}, "the other hosts reach"},
		{"0.0.0.0:4222", []string{"--cluster-init", "--node-name", "a"}, "the other hosts reach"},
		{"10.0.0.1:4222", []string{"--join", "https://x:9345", "--node-name", "a"}, "--token"},
		{"10.0.0.1:4222", []string{"--cluster-init", "--join", "https://x:9345", "--token", "t", "--node-name", "a"}, "one of them"},
		{"10.0.0.1:4222", []string{"--cluster-addr", "10.0.0.1:7000", "--node-name", "a"}, "need --cluster-init"},
	} {
		if _, err := resolve(c.nats, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: error %v, want one saying %q", c.nats, c.args, err, c.want)
		}
	}
}

//go:build linux

package netnstest_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/internal/netnstest"
)

// The test binary doubles as the program run on the hosts: with
// NETNSTEST_LISTEN it accepts connections and writes its address; with
// NETNSTEST_DIAL it dials and prints what it read.
func TestMain(m *testing.M) {
	if a := os.Getenv("NETNSTEST_LISTEN"); a != "" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(1)
			}
			fmt.Fprintln(c, a)
			c.Close()
		}
	}
	if a := os.Getenv("NETNSTEST_DIAL"); a != "" {
		got, err := dial(a)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Print(got)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func dial(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Hosts reach one another and the test; a partitioned host is silent; a
// killed process is gone and restarts; and nothing is left afterwards.
func TestHosts(t *testing.T) {
	netnstest.Require(t)
	t.Run("hosts", func(t *testing.T) {
		nt := netnstest.New(t, 2)
		h1, h2 := nt.Hosts[0], nt.Hosts[1]
		addr := h1.IP + ":9999"
		srv := h1.Start("listener", []string{"NETNSTEST_LISTEN=" + addr}, os.Args[0])
		eventually(t, func() error {
			_, err := dial(addr)
			return err
		})
		// From another host.
		out, err := exec.Command("ip", "netns", "exec", h2.NS, "env", "NETNSTEST_DIAL="+addr, os.Args[0]).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != addr {
			t.Fatalf("h2 dialling h1: %v %s", err, out)
		}
		// The host's loopback is its own.
		if out, err := exec.Command("ip", "netns", "exec", h2.NS, "env", "NETNSTEST_DIAL=127.0.0.1:9999", os.Args[0]).CombinedOutput(); err == nil {
			t.Fatalf("h2 reached h1's port on its own loopback: %s", out)
		}
		h1.Partition()
		if _, err := dial(addr); err == nil {
			t.Fatal("a partitioned host answered")
		}
		h1.Heal()
		eventually(t, func() error { _, err := dial(addr); return err })
		srv.Kill()
		if srv.Running() {
			t.Fatal("killed process still running")
		}
		if _, err := dial(addr); err == nil {
			t.Fatal("a killed process answered")
		}
		srv.Restart()
		eventually(t, func() error { _, err := dial(addr); return err })
		if !strings.Contains(srv.Output(), "listening") {
			t.Fatalf("output not kept: %q", srv.Output())
		}
	})
	// After the subtest's cleanup: no namespace, link or process left.
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), netnstest.Prefix+"-") {
		t.Fatalf("namespaces left: %s", out)
	}
	out, _ = exec.Command("ip", "-o", "link", "show").Output()
	if strings.Contains(string(out), netnstest.Prefix) {
		t.Fatalf("links left: %s", out)
	}
}

// A crashed earlier run's namespaces and links are removed by the next.
func TestLeftoversRemoved(t *testing.T) {
	netnstest.Require(t)
	for _, args := range [][]string{{"netns", "add", netnstest.Prefix + "-stale"}, {"link", "add", netnstest.Prefix + "stale", "type", "veth", "peer", "name", netnstest.Prefix + "stalep"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	t.Run("new", func(t *testing.T) { netnstest.New(t, 1) })
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), "stale") {
		t.Fatalf("stale namespace kept: %s", out)
	}
	out, _ = exec.Command("ip", "-o", "link", "show").Output()
	if strings.Contains(string(out), "stale") {
		t.Fatalf("stale link kept: %s", out)
	}
}

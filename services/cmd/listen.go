//go:build linux

package cmd

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/miniku/miniku/bus"
)

// listenAddr is an address a command will listen on, with the flag that
// sets it, for messages.
type listenAddr struct{ flag, addr string }

// checkListen binds and releases each address before anything starts, so
// that a busy port fails the command at once, naming the flag, the
// address and the cause, instead of after "miniku is up" (the apiserver
// listens in its own goroutine) or, for NATS, after its 10 s readiness
// wait. A listener closed before it accepted anything leaves no
// TIME_WAIT, so the real listen right after succeeds.
func checkListen(addrs ...listenAddr) error {
	seen := map[string]string{}
	var errs []error
	for _, a := range addrs {
		if a.addr == "" {
			continue
		}
		// Port 0 and NATS's -1 pick a free port: nothing to collide with.
		if _, port, err := net.SplitHostPort(a.addr); err == nil && (port == "0" || port == "-1") {
			continue
		}
		if other, dup := seen[a.addr]; dup {
			errs = append(errs, fmt.Errorf("%s %s: the same address as %s", a.flag, a.addr, other))
			continue
		}
		seen[a.addr] = a.flag
		ln, err := net.Listen("tcp", a.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %s", a.flag, a.addr, listenCause(err, a.flag)))
			continue
		}
		if err := ln.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: release the test listener: %w", a.flag, a.addr, err))
		}
	}
	return errors.Join(errs...)
}

func listenCause(err error, flag string) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "address already in use: another process (another miniku?) listens there; stop it or choose another with " + flag
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "cannot assign requested address: no interface of this host has that IP"
	case errors.Is(err, syscall.EACCES):
		return "permission denied: ports below 1024 need root"
	}
	return err.Error()
}

// checkNoAuth refuses --insecure-no-auth with an API address other hosts
// can reach before anything starts (the apiserver refuses it too, but only
// once NATS and the store are up).
func checkNoAuth(noAuth bool, addrs ...listenAddr) error {
	if !noAuth {
		return nil
	}
	var errs []error
	for _, a := range addrs {
		if a.addr == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", a.flag, a.addr, err))
			continue
		}
		if !bus.IsLoopback(host) {
			errs = append(errs, fmt.Errorf("--insecure-no-auth with %s %s: refusing to serve the API without authentication on an address other hosts can reach; use a loopback address (127.0.0.1) or drop --insecure-no-auth", a.flag, a.addr))
		}
	}
	return errors.Join(errs...)
}

// listenAddr is --metrics-addr as serveMetrics will listen on it.
func (o *obsFlags) listenAddr() (listenAddr, error) {
	if strings.TrimSpace(o.metricsAddr) == "" {
		return listenAddr{}, nil
	}
	addr, err := metricsListenAddr(o.metricsAddr)
	return listenAddr{"--metrics-addr", addr}, err
}

// checkStart runs checkNoAuth and checkListen on a command's addresses
// before the command starts anything: the API's (with api, the flags of
// registerAPIFlags, and apiAddr, --api-addr; nil for a command without an
// API), --metrics-addr and others.
func (c *common) checkStart(api *apiFlags, apiAddr string, others ...listenAddr) error {
	m, err := c.obs.listenAddr()
	if err != nil {
		return err
	}
	addrs := append(others, m)
	if api != nil {
		apiAddrs := []listenAddr{{"--api-addr", apiAddr}, {"--https-addr", *api.httpsAddr}}
		if err := checkNoAuth(*api.noAuth, apiAddrs...); err != nil {
			return err
		}
		addrs = append(apiAddrs, addrs...)
	}
	return checkListen(addrs...)
}

package bustest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/miniku/miniku/bus"
)

// Cluster starts n embedded JetStream servers on loopback, each with its
// own store, routed to one another as one NATS cluster, and waits until
// JetStream has a meta leader that every server knows; all are shut down
// at cleanup. URLs is the client URL list of all of them, as a component
// on a cluster is given.
func Cluster(tb testing.TB, n int) (servers []*server.Server, urls string) {
	tb.Helper()
	// Every server is given every route (its own is ignored): a JetStream
	// cluster's first server needs configured routes to start. Ports are
	// picked first, so each server knows the others' before any starts.
	routes := make([]string, n)
	for i := range routes {
		routes[i] = freePort(tb)
	}
	servers = make([]*server.Server, n)
	clientURLs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Started together: a server is ready once JetStream has its
			// quorum, which needs the others.
			servers[i], errs[i] = bus.StartServer(bus.ServerConfig{
				Addr:        "127.0.0.1:0",
				StoreDir:    tb.TempDir(),
				Name:        fmt.Sprintf("s%d", i+1),
				ClusterAddr: routes[i],
				Routes:      routes,
				Logger:      Logger(tb).With("server", fmt.Sprintf("s%d", i+1)),
			})
		})
	}
	wg.Wait()
	for i, ns := range servers {
		if ns != nil {
			tb.Cleanup(func() {
				ns.Shutdown()
				ns.WaitForShutdown()
			})
			clientURLs[i] = ns.ClientURL()
		}
	}
	if err := errors.Join(errs...); err != nil {
		tb.Fatalf("start a cluster of %d nats servers: %v", n, err)
	}
	Eventually(tb, 30*time.Second, func() error {
		for _, ns := range servers {
			if ns.NumRoutes() < n-1 {
				return fmt.Errorf("%s has %d routes, want %d", ns.Name(), ns.NumRoutes(), n-1)
			}
			if !ns.JetStreamIsCurrent() {
				return fmt.Errorf("%s's JetStream is not current with the meta leader yet", ns.Name())
			}
		}
		for _, ns := range servers {
			if ns.JetStreamIsLeader() {
				return nil
			}
		}
		return fmt.Errorf("no JetStream meta leader yet")
	})
	return servers, strings.Join(clientURLs, ",")
}

// freePort is a loopback host:port free a moment ago.
func freePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

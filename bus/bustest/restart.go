package bustest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/miniku/miniku/bus"
)

// Hosts is a cluster like Cluster's whose servers can be stopped and
// started again with their own store, name, client port and routes, as a
// host that goes down and comes back. Every running server is shut down
// at cleanup.
type Hosts struct {
	tb   testing.TB
	mu   sync.Mutex
	cfgs []bus.ServerConfig
	srvs []*server.Server
}

// NewHosts starts n routed JetStream servers and waits for a meta leader
// every server knows.
func NewHosts(tb testing.TB, n int) *Hosts {
	tb.Helper()
	h := &Hosts{tb: tb, cfgs: make([]bus.ServerConfig, n), srvs: make([]*server.Server, n)}
	routes := make([]string, n)
	for i := range routes {
		routes[i] = freePort(tb)
	}
	for i := range n {
		name := fmt.Sprintf("s%d", i+1)
		h.cfgs[i] = bus.ServerConfig{Addr: freePort(tb), StoreDir: tb.TempDir(), Name: name,
			ClusterAddr: routes[i], Routes: routes, Logger: Logger(tb).With("server", name)}
	}
	tb.Cleanup(func() {
		for i := range n {
			h.Stop(i)
		}
	})
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		// Together: a server is ready once JetStream has its quorum.
		wg.Go(func() { errs[i] = h.start(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatalf("start a cluster of %d nats servers: %v", n, err)
		}
	}
	h.WaitFormed(30 * time.Second)
	return h
}

func (h *Hosts) start(i int) error {
	ns, err := bus.StartServer(h.cfgs[i])
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.srvs[i] = ns
	h.mu.Unlock()
	return nil
}

// Start starts server i again (after Stop) from its store.
func (h *Hosts) Start(i int) {
	h.tb.Helper()
	if err := h.start(i); err != nil {
		h.tb.Fatalf("restart nats server %s: %v", h.cfgs[i].Name, err)
	}
}

// Stop shuts server i down (a no-op when it is stopped).
func (h *Hosts) Stop(i int) {
	h.mu.Lock()
	ns := h.srvs[i]
	h.srvs[i] = nil
	h.mu.Unlock()
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}

// Server is server i, nil while stopped.
func (h *Hosts) Server(i int) *server.Server {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.srvs[i]
}

// Name is server i's name (s1, s2, ...).
func (h *Hosts) Name(i int) string { return h.cfgs[i].Name }

// Index is the index of the server named name, -1 if none.
func (h *Hosts) Index(name string) int {
	for i, c := range h.cfgs {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// URL is server i's client URL (the same across restarts).
func (h *Hosts) URL(i int) string { return "nats://" + h.cfgs[i].Addr }

// URLs is every server's client URL, comma-separated.
func (h *Hosts) URLs() string {
	urls := make([]string, len(h.cfgs))
	for i := range h.cfgs {
		urls[i] = h.URL(i)
	}
	return strings.Join(urls, ",")
}

// WaitFormed waits until every running server is routed to the others
// and current with a JetStream meta leader.
func (h *Hosts) WaitFormed(timeout time.Duration) {
	h.tb.Helper()
	Eventually(h.tb, timeout, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		leader := false
		for _, ns := range h.srvs {
			if ns == nil {
				return fmt.Errorf("a server is stopped")
			}
			if ns.NumRoutes() < len(h.srvs)-1 {
				return fmt.Errorf("%s has %d routes, want %d", ns.Name(), ns.NumRoutes(), len(h.srvs)-1)
			}
			if !ns.JetStreamIsCurrent() {
				return fmt.Errorf("%s's JetStream is not current with the meta leader yet", ns.Name())
			}
			leader = leader || ns.JetStreamIsLeader()
		}
		if !leader {
			return fmt.Errorf("no JetStream meta leader yet")
		}
		return nil
	})
}

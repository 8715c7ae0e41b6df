package bus_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
)

// BenchmarkKVPutSync measures one KV put (a pod-sized value, acked by the
// server) under JetStream's sync settings: the default (fsync every 2 min),
// every 1 s, and SyncAlways (fsync before every ack). Run with the store on
// a real disk, not a tmpfs: go test -run '^$' -bench KVPutSync ./bus/
func BenchmarkKVPutSync(b *testing.B) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		always   bool
	}{{"default-2m", 0, false}, {"interval-1s", time.Second, false}, {"always", 0, true}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			kv := benchBucket(b, &server.Options{SyncInterval: tc.interval, SyncAlways: tc.always}, false)
			val := make([]byte, 600) // about a msgpack pod
			b.ResetTimer()
			for i := range b.N {
				if _, err := kv.Put(ctx, fmt.Sprintf("pod-%d", i%200), val); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchBucket starts a JetStream server with opts' sync settings on a
// store in a temporary directory and returns a KV bucket on a client
// connection (in process, or over loopback TCP).
func benchBucket(b *testing.B, opts *server.Options, inProcess bool) jetstream.KeyValue {
	b.Helper()
	opts.Host, opts.Port, opts.JetStream, opts.StoreDir, opts.NoSigs = "127.0.0.1", -1, true, b.TempDir(), true
	ns, err := server.NewServer(opts)
	if err != nil {
		b.Fatal(err)
	}
	ns.Start()
	b.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		b.Fatal("not ready")
	}
	connOpts := []nats.Option{}
	url := ns.ClientURL()
	if inProcess {
		connOpts, url = append(connOpts, nats.InProcessServer(ns)), ""
	}
	nc, err := nats.Connect(url, connOpts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "bench", Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	return kv
}

// The sync settings reach JetStream (miniku nats and up pass --nats-sync).
func TestStartServerSync(t *testing.T) {
	for _, tc := range []struct {
		always   bool
		interval time.Duration
	}{{false, time.Second}, {true, 0}} {
		ns, err := bus.StartServer(bus.ServerConfig{Addr: "127.0.0.1:0", StoreDir: t.TempDir(), SyncAlways: tc.always, SyncInterval: tc.interval})
		if err != nil {
			t.Fatal(err)
		}
		got := ns.JetStreamConfig()
		ns.Shutdown()
		ns.WaitForShutdown()
		if got.SyncAlways != tc.always || (!tc.always && got.SyncInterval != tc.interval) {
			t.Errorf("asked always=%v interval=%v: JetStream has always=%v interval=%v", tc.always, tc.interval, got.SyncAlways, got.SyncInterval)
		}
	}
}

// BenchmarkKVWritesWithWatchers is the bus's ceiling for MiniKu's write
// pattern: 32 writers creating then updating keys (a pod's create and
// bind) on an in-process connection, with 0 or 5 watchers of the bucket
// (in `miniku up` the scheduler, controller and apiserver each watch pods,
// plus the hollow kubelets and any API watch). Every write is delivered to
// every watcher, which costs the server as much as the write itself.
// go test -run '^$' -bench KVWritesWithWatchers ./bus/
func BenchmarkKVWritesWithWatchers(b *testing.B) {
	for _, watchers := range []int{0, 5} {
		b.Run(fmt.Sprintf("watchers-%d", watchers), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			kv := benchBucket(b, &server.Options{SyncInterval: time.Second}, true)
			for range watchers {
				w, err := kv.WatchAll(ctx)
				if err != nil {
					b.Fatal(err)
				}
				defer w.Stop()
				go func() {
					for range w.Updates() {
					}
				}()
			}
			val := make([]byte, 600)
			const writers = 32
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						k := fmt.Sprintf("k-%d", i)
						rev, err := kv.Create(ctx, k, val)
						if err == nil {
							_, err = kv.Update(ctx, k, val, rev)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

package bus_test

import (
	"context"
	"fmt"
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
			ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
				StoreDir: b.TempDir(), NoSigs: true, SyncInterval: tc.interval, SyncAlways: tc.always})
			if err != nil {
				b.Fatal(err)
			}
			ns.Start()
			defer ns.Shutdown()
			if !ns.ReadyForConnections(10 * time.Second) {
				b.Fatal("not ready")
			}
			nc, err := nats.Connect(ns.ClientURL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ctx := context.Background()
			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "bench", Storage: jetstream.FileStorage})
			if err != nil {
				b.Fatal(err)
			}
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

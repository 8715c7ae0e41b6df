package controller_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/controller"
)

// The controller builds its pods through the kinds Pod strategy: they
// get the API's identity and status, and a template the API would refuse
// (written straight into KV) yields no pod at all. Template annotations
// reach the pods.
func TestControllerPodsPassTheStrategy(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	runController(t, conn, controller.Config{})
	ctx := context.Background()
	bad := testRS("bad", 2)
	bad.Template.Ports = []schemas.ContainerPort{{ContainerPort: 0}}
	good := testRS("good", 2)
	good.Template.Annotations = map[string]string{"checksum/config": "abc"}
	for _, rs := range []*schemas.ReplicaSet{bad, good} {
		if err := conn.ReplicaSets.Create(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	bustest.Eventually(t, 20*time.Second, func() error {
		pods, err := conn.Pods.List(ctx)
		if err != nil {
			return err
		}
		good := 0
		for _, p := range pods {
			if p.Owner == "bad" {
				t.Fatalf("pod %s written from a template the API refuses", p.Name)
			}
			if len(p.UID) != 32 || p.Status != schemas.PodPending || p.CreatedAt.IsZero() || p.OwnerUID != "good-uid" ||
				p.Annotations["checksum/config"] != "abc" {
				t.Fatalf("pod %+v", p)
			}
			good++
		}
		if good != 2 {
			return fmt.Errorf("%d pods of good", good)
		}
		return nil
	})
}

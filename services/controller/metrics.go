package controller

import (
	"github.com/miniku/miniku/bus/metrics"
	"github.com/miniku/miniku/schemas"
)

var _ metrics.ClusterSource = (*Controller)(nil)

// ClusterState is what the cluster gauges (pods per phase, heartbeat
// ages) are computed from at scrape time: this controller's caches.
func (c *Controller) ClusterState() ([]*schemas.Pod, []*schemas.Node) {
	return c.pods.List(), c.nodes.List()
}

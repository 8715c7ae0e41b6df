package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerIdleLimit is the longest any consumer of a MiniKu stream lives
// on unused (the streams' ConsumerLimits, applied by the server to every
// consumer, durable or not). NATS permissions cannot keep the viewer from
// naming its consumer durable (nats.go creates ephemeral and durable
// consumers on the same subject), so no consumer is persistent: one left
// behind is removed like an ephemeral one. Five minutes is nats.go's
// ordered consumers' own threshold, which a lower limit would refuse.
const ConsumerIdleLimit = 5 * time.Minute

// No MaxAckPending limit: the server would then refuse the ordered
// (AckNone) consumers every watcher uses; nats-server bounds unacked
// messages at 1,000 by default for consumers that ack.
var consumerLimits = jetstream.StreamConsumerLimits{InactiveThreshold: ConsumerIdleLimit}

// limitConsumers sets consumerLimits on the stream if it lacks them: a
// bucket's KeyValueConfig cannot say them, and updating the bucket resets
// them.
func (c *Conn) limitConsumers(ctx context.Context, stream string) error {
	s, err := c.js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("limit consumers of %s: %w", stream, err)
	}
	cfg := s.CachedInfo().Config
	if cfg.ConsumerLimits == consumerLimits {
		return nil
	}
	cfg.ConsumerLimits = consumerLimits
	if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("limit consumers of %s: %w", stream, err)
	}
	return nil
}

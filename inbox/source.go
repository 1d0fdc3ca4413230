package inbox

import (
	"context"
	"time"

	"github.com/eoskit/eos"
)

// Delivery is one message handed over by a transport, with the means to
// settle it. The Processor calls exactly one of Ack or Nack, and only after
// the batch's transaction has ended.
type Delivery interface {
	Message() eos.Message
	// Ack tells the transport the message is done with.
	Ack(ctx context.Context) error
	// Nack asks the transport to redeliver the message after delay.
	Nack(ctx context.Context, delay time.Duration) error
}

// Positioner is implemented by a Delivery that knows where its transport
// holds the message (a stream and sequence, a partition and offset). The
// position is kept with a dead letter; for a delivery that fails validation
// it also names the record, so that redeliveries of that one message find
// the record they made and are suppressed, while two different messages
// never share one. The position must identify the message within the
// transport and be the same on every delivery of it.
type Positioner interface {
	Position() string
}

// DeliveryCounter is implemented by a Delivery whose transport counts the
// deliveries of each message (JetStream's NumDelivered). DeliveryCount is
// which delivery of its message this one is, this one included: 1 for the
// first, 2 or more for a redelivery (after a nack, an ack that was lost or
// came too late, a restart or a rebalance), 0 when the transport cannot
// tell. The count is reported in [Result.DeliveryCount]; it is informative
// only: the claim, not the count, decides what is a duplicate.
type DeliveryCounter interface {
	DeliveryCount() int
}

// Source hands deliveries to a Processor. A transport (NATS JetStream,
// Kafka) implements it. Its deliveries may say more by implementing
// optional interfaces: [Positioner] (where the transport holds the
// message) and [DeliveryCounter] (which delivery of the message this is,
// reported in [Result.DeliveryCount] for counting redeliveries).
//
// Processor.Run never calls Fetch while another Fetch runs, but it calls it
// for the next batch while it still processes (and has not yet settled) the
// deliveries of the previous Fetch: a Source must keep the deliveries of
// its last two Fetches usable, and count a delivery as in use until it is
// settled.
type Source interface {
	// Fetch blocks until at least one delivery is ready or ctx ends, then
	// returns up to max deliveries, waiting at most maxWait after the first
	// for more.
	Fetch(ctx context.Context, max int, maxWait time.Duration) ([]Delivery, error)
}

// ChanSource adapts a channel of deliveries to a Source. Fetch returns
// io.EOF-free: when the channel is closed and drained it returns
// ErrSourceClosed.
type ChanSource <-chan Delivery

// Fetch implements Source.
func (c ChanSource) Fetch(ctx context.Context, max int, maxWait time.Duration) ([]Delivery, error) {
	var out []Delivery
	select {
	case d, ok := <-c:
		if !ok {
			return nil, ErrSourceClosed
		}
		out = append(out, d)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Take what is ready without waiting, then wait for the rest.
	for len(out) < max {
		select {
		case d, ok := <-c:
			if !ok {
				return out, nil
			}
			out = append(out, d)
			continue
		default:
		}
		break
	}
	if len(out) >= max || maxWait <= 0 {
		return out, nil
	}
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	for len(out) < max {
		select {
		case d, ok := <-c:
			if !ok {
				return out, nil
			}
			out = append(out, d)
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, nil
		}
	}
	return out, nil
}

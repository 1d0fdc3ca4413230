package natsjs

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/internal/config"
	"github.com/eoskit/eos/outbox"
)

// PublisherConfig configures a Publisher. Defaults are applied by
// [NewPublisher].
type PublisherConfig struct {
	// Window is the most publishes awaiting their ack at once. Default 256;
	// 1 publishes synchronously.
	Window int
	// OnDuplicate, if set, is called for each publish JetStream reported as
	// a duplicate (dropped by its dedupe): a re-publish after a crash, or a
	// producer retry.
	OnDuplicate func(subject, id string)
}

// Publisher publishes eos messages to JetStream with their id as
// Nats-Msg-Id. It implements outbox.Publisher and is safe for concurrent use.
type Publisher struct {
	js         jetstream.JetStream
	cfg        PublisherConfig
	duplicates atomic.Int64
}

var _ outbox.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher over js.
func NewPublisher(js jetstream.JetStream, cfg PublisherConfig) (*Publisher, error) {
	if js == nil {
		return nil, &eos.ConfigError{Field: "natsjs.NewPublisher js", Reason: "nil"}
	}
	if err := config.Int("natsjs.PublisherConfig.Window", &cfg.Window, 256, 65536); err != nil {
		return nil, err
	}
	return &Publisher{js: js, cfg: cfg}, nil
}

// Duplicates returns how many publishes JetStream reported as duplicates.
func (p *Publisher) Duplicates() int64 { return p.duplicates.Load() }

// Result is the broker's answer to one publish.
type Result struct {
	Stream    string
	Sequence  uint64
	Duplicate bool // JetStream already had this Nats-Msg-Id within its window
}

// PublishMessage publishes one message synchronously and returns the
// broker's answer; a duplicate is reported in the Result, not as an error.
func (p *Publisher) PublishMessage(ctx context.Context, subject string, m eos.Message) (Result, error) {
	if err := eos.Validate(m); err != nil {
		return Result{}, err
	}
	ack, err := p.js.PublishMsg(ctx, toNATS(subject, m))
	if err != nil {
		return Result{}, fmt.Errorf("natsjs: publish %s to %s: %w", m.ID, subject, err)
	}
	return p.result(subject, m.ID, ack), nil
}

func (p *Publisher) result(subject, id string, ack *jetstream.PubAck) Result {
	if ack.Duplicate {
		p.duplicates.Add(1)
		if p.cfg.OnDuplicate != nil {
			p.cfg.OnDuplicate(subject, id)
		}
	}
	return Result{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}
}

// Publish implements outbox.Publisher: it publishes msgs in order, at most
// Window awaiting their ack at once, and returns how many from the first
// were acknowledged (a duplicate counts: the broker has the message).
func (p *Publisher) Publish(ctx context.Context, msgs []outbox.Envelope) (int, error) {
	if p.cfg.Window == 1 {
		for i, m := range msgs {
			if _, err := p.PublishMessage(ctx, m.Topic, m.Message); err != nil {
				return i, err
			}
		}
		return len(msgs), nil
	}
	acked := 0
	for start := 0; start < len(msgs); start += p.cfg.Window {
		chunk := msgs[start:min(start+p.cfg.Window, len(msgs))]
		futures := make([]jetstream.PubAckFuture, 0, len(chunk))
		var sendErr error
		for _, m := range chunk {
			f, err := p.js.PublishMsgAsync(toNATS(m.Topic, m.Message))
			if err != nil {
				sendErr = fmt.Errorf("natsjs: publish %s to %s: %w", m.ID, m.Topic, err)
				break
			}
			futures = append(futures, f)
		}
		for i, f := range futures {
			select {
			case ack := <-f.Ok():
				p.result(chunk[i].Topic, chunk[i].ID, ack)
				acked++
			case err := <-f.Err():
				return acked, fmt.Errorf("natsjs: publish %s to %s: %w", chunk[i].ID, chunk[i].Topic, err)
			case <-ctx.Done():
				return acked, ctx.Err()
			}
		}
		if sendErr != nil {
			return acked, sendErr
		}
	}
	return acked, nil
}

package natsjs

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos/outbox"
)

// Publish implements outbox.Publisher: it publishes msgs in order per key,
// at most Window awaiting their ack at once and at most one per key, and
// returns how many from the first were acknowledged (a duplicate counts:
// the broker has the message); see publishInOrder. When
// msgs[acked] failed in a way no retry fixes, the error wraps
// outbox.ErrUnpublishable, and the relay parks that message instead of
// retrying it forever. The outbox validated the messages; Publish does not
// validate again.
func (p *Publisher) Publish(ctx context.Context, msgs []outbox.Envelope) (int, error) {
	acked, err := p.publishInOrder(ctx, msgs)
	if err != nil && acked < len(msgs) {
		err = p.permanent(ctx, msgs[acked].Topic, err)
	}
	return acked, err
}

// permanent returns err, wrapping outbox.ErrUnpublishable when JetStream
// refused the publish of a message on subject for good:
//
//   - the message is larger than the server's max_payload (nats.ErrMaxPayload,
//     refused by the client before sending) or than the stream's MaxMsgSize
//     (jetstream.ErrStreamMessageExceedsMaximum);
//   - no stream captures subject.
//
// JetStream says "no responders" (jetstream.ErrNoStreamResponse) when no
// stream captures a subject, but also while the stream that does cannot
// answer yet: during a restart, a leader election, a stream's recovery. So
// before calling that permanent, permanent asks the JetStream API which
// stream captures subject: only an answer of "none" (ErrStreamNotFound, from
// a server that answered) is permanent. A stream's name, a timeout or any
// other error leave the failure transient, to be retried with backoff. A
// stream created later does not unpark a row: the operator requeues it.
func (p *Publisher) permanent(ctx context.Context, subject string, err error) error {
	switch {
	case ctx.Err() != nil:
		return err
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum):
		return fmt.Errorf("%w: %w", outbox.ErrUnpublishable, err)
	case errors.Is(err, jetstream.ErrNoStreamResponse) && p.noStream(ctx, subject):
		return fmt.Errorf("%w: no stream captures subject %s: %w", outbox.ErrUnpublishable, subject, err)
	}
	return err
}

// noStream reports whether the JetStream API answers, within AckTimeout,
// that no stream captures subject.
func (p *Publisher) noStream(ctx context.Context, subject string) bool {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	defer cancel()
	_, err := p.js.StreamNameBySubject(ctx, subject)
	return errors.Is(err, jetstream.ErrStreamNotFound)
}

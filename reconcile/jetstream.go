package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultFetchWait is the default of JetStreamSource.FetchWait.
const DefaultFetchWait = 5 * time.Second

// JetStreamSource reads a range of a JetStream stream, headers only (the
// payloads never travel). An entry's id is its Nats-Msg-Id header, as
// natsjs's Publisher sets it (or IDHeader), its time the stream's.
//
// The range is FirstSeq..LastSeq, or From..To by time, or both; it ends
// at the stream's last message when the scan starts, so a run sees a
// fixed range however fast producers go.
type JetStreamSource struct {
	JS     jetstream.JetStream
	Stream string
	// Subject filters the stream's subjects (wildcards allowed); empty:
	// all.
	Subject string
	// FirstSeq and LastSeq bound the range by stream sequence; zero: the
	// stream's first, and its last when the scan starts.
	FirstSeq, LastSeq uint64
	// From and To bound the range by the time the stream stored each
	// message; zero: unbounded.
	From, To time.Time
	// IDHeader is the header holding the id. Default
	// jetstream.MsgIDHeader (Nats-Msg-Id).
	IDHeader string
	// FetchWait bounds each fetch of a page. Default DefaultFetchWait.
	FetchWait time.Duration
}

// Name implements Source.
func (s JetStreamSource) Name() string { return "jetstream:" + s.Stream }

// Bounded implements [Bounded]: the range ends before the stream's end
// when LastSeq or To is set.
func (s JetStreamSource) Bounded() bool { return s.LastSeq != 0 || !s.To.IsZero() }

// Scan implements Source.
func (s JetStreamSource) Scan(ctx context.Context, page int, fn func([]Entry) error) error {
	fail := func(err error) error { return &SourceError{Source: s.Name(), Err: err} }
	st, err := s.JS.Stream(ctx, s.Stream)
	if err != nil {
		return fail(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fail(err)
	}
	last := info.State.LastSeq
	if s.LastSeq != 0 {
		last = min(last, s.LastSeq)
	}
	if info.State.Msgs == 0 || last < max(s.FirstSeq, info.State.FirstSeq) {
		return nil
	}
	cc := jetstream.OrderedConsumerConfig{HeadersOnly: true}
	if s.Subject != "" {
		cc.FilterSubjects = []string{s.Subject}
	}
	switch {
	case s.FirstSeq > 0:
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, s.FirstSeq
	case !s.From.IsZero():
		t := s.From
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	cons, err := st.OrderedConsumer(ctx, cc)
	if err != nil {
		return fail(err)
	}
	header := s.IDHeader
	if header == "" {
		header = jetstream.MsgIDHeader
	}
	wait := s.FetchWait
	if wait <= 0 {
		wait = DefaultFetchWait
	}
	buf := make([]Entry, 0, page)
	// A fetch waits until it has as many messages as it asked for: the
	// first asks for one without waiting (none: the range is empty), the
	// next for no more than the consumer says are pending.
	want, first := 1, true
	for {
		fctx, cancel := context.WithTimeout(ctx, wait)
		var batch jetstream.MessageBatch
		if first {
			batch, err = cons.FetchNoWait(1)
		} else {
			batch, err = cons.Fetch(want, jetstream.FetchContext(fctx))
		}
		if err != nil {
			cancel()
			return fail(err)
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				cancel()
				return fail(err)
			}
			want = int(min(uint64(page), max(md.NumPending, 1)))
			if done || md.Sequence.Stream > last || (!s.To.IsZero() && md.Timestamp.After(s.To)) {
				done = true
				continue // drain the batch
			}
			if s.FirstSeq > 0 && !s.From.IsZero() && md.Timestamp.Before(s.From) {
				continue
			}
			buf = append(buf, Entry{ID: m.Headers().Get(header), At: md.Timestamp})
			if md.Sequence.Stream == last || md.NumPending == 0 {
				done = true
			}
		}
		err = batch.Error()
		cancel()
		if err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !(n > 0 && errors.Is(err, context.DeadlineExceeded)) {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no message within %v before sequence %d", wait, last)
			}
			return fail(err)
		}
		if len(buf) > 0 {
			if err := fn(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		if done {
			return nil
		}
		if n == 0 {
			if first {
				return nil
			}
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
			return fail(fmt.Errorf("no message within %v before sequence %d", wait, last))
		}
		first = false
	}
}

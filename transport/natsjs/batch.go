package natsjs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/outbox"
)

// BatchMode says whether a Publisher sends atomic batches.
//
// JetStream atomic batch publish (nats-server 2.12 and later, on a stream
// with AllowAtomicPublish, which EnsureStream sets by default): every
// message of a batch carries Nats-Batch-Id and Nats-Batch-Sequence, the
// last also Nats-Batch-Commit, and the server stores the batch all or none
// and answers the commit with one ack. Nats-Msg-Id dedupe holds inside a
// batch, but a batch holding an id the stream has already stored is refused
// whole (error 10201), as after a relay crashed between publishing and
// marking its rows sent: the Publisher then publishes that batch's messages
// one by one, and the stream's dedupe drops the copies as it would have
// without batches.
type BatchMode uint8

const (
	// BatchAuto, the default, sends the messages of a Publish call bound for
	// one stream as atomic batches when the connected server is 2.12 or
	// later and the stream allows atomic publish, and each message alone
	// otherwise. The Publisher looks the stream of a subject up once
	// (StreamNameBySubject, then the stream's configuration) and again a
	// minute later, or at once after a batch did not go through.
	BatchAuto BatchMode = iota
	// BatchOff publishes each message alone.
	BatchOff
)

// Headers of JetStream atomic batch publish.
const (
	headerBatchID     = "Nats-Batch-Id"
	headerBatchSeq    = "Nats-Batch-Sequence"
	headerBatchCommit = "Nats-Batch-Commit"
)

// maxBatchSize bounds PublisherConfig.BatchSize; the relay's batches are at
// most 10000 rows.
const maxBatchSize = 10000

// streamRecheck is how long a stream's looked-up configuration is used.
const streamRecheck = time.Minute

// atomicServer reports whether the server nc is connected to takes atomic
// batches (2.12 and later).
func atomicServer(nc *nats.Conn) bool {
	v := strings.TrimPrefix(nc.ConnectedServerVersion(), "v")
	major, rest, _ := strings.Cut(v, ".")
	minor, _, _ := strings.Cut(rest, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	return err1 == nil && err2 == nil && (ma > 2 || ma == 2 && mi >= 12)
}

// batchStreams returns, for each message, the stream whose atomic batches
// may carry it, "" to publish it alone; nil when none may go in a batch.
func (p *Publisher) batchStreams(ctx context.Context, msgs []outbox.Envelope) []string {
	if p.cfg.Batch == BatchOff || len(msgs) < 2 || !atomicServer(p.js.Conn()) {
		return nil
	}
	var out []string
	byTopic := make(map[string]string)
	for i, m := range msgs {
		s, ok := byTopic[m.Topic]
		if !ok {
			s = p.streams.atomic(ctx, m.Topic)
			byTopic[m.Topic] = s
		}
		if s == "" {
			continue
		}
		if out == nil {
			out = make([]string, len(msgs))
		}
		out[i] = s
	}
	return out
}

// batcher groups the messages of a window into atomic batches, one open
// batch per stream.
type batcher struct {
	size   int
	opened map[string]int // stream → its open batch, a unit of the window
}

func newBatcher(size int) *batcher { return &batcher{size: size, opened: make(map[string]int)} }

// join returns the open batch of stream that the next message of w may
// join, -1 if none; prev is the message before it with its key, if
// hasPrev. A message joins only if its key's previous message is in that
// batch or before its first message: a batch then waits only for messages
// before its first, and so never for a later one that waits for it.
func (b *batcher) join(w *window, stream string, prev int, hasPrev bool) int {
	u, ok := b.opened[stream]
	if !ok || len(w.units[u].msgs) >= b.size {
		return -1
	}
	if hasPrev && w.unitOf[prev] != u && prev > w.units[u].msgs[0] {
		return -1
	}
	return u
}

// open makes unit u the open batch of stream.
func (b *batcher) open(stream string, u int) { b.opened[stream] = u }

// sendBatch sends the messages of u as one atomic batch, the reply to its
// commit to come on u.reply.
func (w *window) sendBatch(u *unit) error {
	nc := w.p.js.Conn()
	u.batch = eos.NewID()
	u.reply = make(chan *nats.Msg, 1)
	sub, err := nc.ChanSubscribe(nc.NewInbox(), u.reply)
	if err != nil {
		return err
	}
	u.sub = sub
	for k, i := range u.msgs {
		m := toNATS(w.msgs[i].Topic, w.msgs[i].Message)
		m.Header.Set(headerBatchID, u.batch)
		m.Header.Set(headerBatchSeq, strconv.Itoa(k+1))
		if k == len(u.msgs)-1 {
			m.Header.Set(headerBatchCommit, "1")
			m.Reply = sub.Subject
		}
		if err := nc.PublishMsg(m); err != nil {
			sub.Unsubscribe()
			return fmt.Errorf("send message %d of %d: %w", k+1, len(u.msgs), err)
		}
	}
	return nil
}

// batchAck is the server's answer to an atomic batch's commit.
type batchAck struct {
	jetstream.PubAck
	Batch string              `json:"batch"`
	Count int                 `json:"count"`
	Error *jetstream.APIError `json:"error"`
}

// committed returns nil when reply says the server stored all of u, and
// why not otherwise. An ack that does not name the batch and its size comes
// from a server that took the commit for a message alone: the others were
// sent without asking for an ack.
func (w *window) committed(u *unit, reply *nats.Msg) error {
	u.sub.Unsubscribe()
	if len(reply.Data) == 0 && reply.Header.Get("Status") == "503" {
		return jetstream.ErrNoStreamResponse
	}
	var ack batchAck
	switch err := json.Unmarshal(reply.Data, &ack); {
	case err != nil:
		return fmt.Errorf("unreadable answer to an atomic batch %q: %w", reply.Data, err)
	case ack.Error != nil:
		return ack.Error
	case ack.Batch != u.batch || ack.Count != len(u.msgs):
		return fmt.Errorf("the server did not store an atomic batch: answered %q for batch %s of %d", reply.Data, u.batch, len(u.msgs))
	}
	w.p.batches.Add(1)
	return nil
}

// fallback publishes the messages of batch i one by one, after the batch
// did not go through whole for the reason why, and settles i with the
// outcome.
func (w *window) fallback(ctx context.Context, i int, why error) {
	u := &w.units[i]
	w.p.fallbacks.Add(1)
	w.p.streams.forget(u.stream)
	if w.p.cfg.OnFallback != nil {
		w.p.cfg.OnFallback(u.stream, len(u.msgs), why)
	}
	msgs := make([]outbox.Envelope, len(u.msgs))
	for k, c := range u.msgs {
		msgs[k] = w.msgs[c]
	}
	acked, err := w.p.publishEach(ctx, msgs)
	w.done(i, acked, err)
}

// streamCache knows which streams take atomic batches, and which subjects
// they capture.
type streamCache struct {
	js      jetstream.JetStream
	now     func() time.Time
	timeout time.Duration
	mu      sync.Mutex
	streams map[string]streamEntry // by name
}

type streamEntry struct {
	subjects []string
	atomic   bool
	checked  time.Time
}

// atomic returns the stream that captures subject if it takes atomic
// batches, "" otherwise or when the lookup fails.
func (c *streamCache) atomic(ctx context.Context, subject string) string {
	now := c.now()
	c.mu.Lock()
	for name, e := range c.streams {
		if now.Sub(e.checked) < streamRecheck && capturesAny(e.subjects, subject) {
			c.mu.Unlock()
			if e.atomic {
				return name
			}
			return ""
		}
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	name, err := c.js.StreamNameBySubject(ctx, subject)
	if err != nil {
		return ""
	}
	s, err := c.js.Stream(ctx, name)
	if err != nil {
		return ""
	}
	cfg := s.CachedInfo().Config
	e := streamEntry{subjects: cfg.Subjects, atomic: cfg.AllowAtomicPublish, checked: now}
	c.mu.Lock()
	if c.streams == nil {
		c.streams = make(map[string]streamEntry)
	}
	c.streams[name] = e
	c.mu.Unlock()
	if e.atomic {
		return name
	}
	return ""
}

// forget drops what the cache knows of stream.
func (c *streamCache) forget(stream string) {
	c.mu.Lock()
	delete(c.streams, stream)
	c.mu.Unlock()
}

// capturesAny reports whether one of the subject filters matches subject.
func capturesAny(filters []string, subject string) bool {
	for _, f := range filters {
		if subjectMatches(f, subject) {
			return true
		}
	}
	return false
}

// subjectMatches reports whether the literal subject matches filter, where
// '*' stands for one token and a final '>' for one or more.
func subjectMatches(filter, subject string) bool {
	for {
		ft, frest, fmore := strings.Cut(filter, ".")
		st, srest, smore := strings.Cut(subject, ".")
		switch {
		case ft == ">" && !fmore:
			return st != ""
		case ft != "*" && ft != st:
			return false
		case fmore != smore:
			return false
		case !fmore:
			return true
		}
		filter, subject = frest, srest
	}
}

package natsjs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eoskit/eos"
)

// StreamConfig is what eos needs of a stream. Defaults are applied by
// [EnsureStream].
type StreamConfig struct {
	// Name of the stream. Required: letters, digits, '-' and '_'.
	Name string
	// Subjects the stream captures. Required.
	Subjects []string
	// Duplicates is the window in which JetStream drops a publish whose
	// Nats-Msg-Id it has seen. Default 2 minutes, or MaxAge if shorter (as
	// the server does); at least 100ms.
	Duplicates time.Duration
	// MaxAge bounds how long messages are kept; 0 keeps them until limits.
	MaxAge time.Duration
	// Replicas is the number of copies in a cluster. Default 1.
	Replicas int
	// Memory stores the stream in memory instead of on disk (tests only:
	// a restart loses it).
	Memory bool
	// NoAtomicPublish leaves the stream's AllowAtomicPublish off. By
	// default EnsureStream turns it on where the server has it (2.12 and
	// later) and the stream can take it (not in the async persist mode), so
	// that the Publisher sends atomic batches (see [BatchMode]).
	NoAtomicPublish bool
}

func (c *StreamConfig) check() error {
	if err := checkName("natsjs.StreamConfig.Name", c.Name); err != nil {
		return err
	}
	if len(c.Subjects) == 0 {
		return &eos.ConfigError{Field: "natsjs.StreamConfig.Subjects", Reason: "empty"}
	}
	if c.Duplicates == 0 {
		c.Duplicates = 2 * time.Minute
		if c.MaxAge > 0 {
			c.Duplicates = min(c.Duplicates, c.MaxAge)
		}
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	switch {
	case c.Duplicates < 100*time.Millisecond:
		return &eos.ConfigError{Field: "natsjs.StreamConfig.Duplicates", Reason: fmt.Sprintf("shorter than 100ms (%v)", c.Duplicates)}
	case c.MaxAge < 0:
		return &eos.ConfigError{Field: "natsjs.StreamConfig.MaxAge", Reason: "negative"}
	case c.MaxAge > 0 && c.Duplicates > c.MaxAge:
		return &eos.ConfigError{Field: "natsjs.StreamConfig.Duplicates", Reason: "longer than MaxAge"}
	case c.Replicas < 1 || c.Replicas > 5:
		return &eos.ConfigError{Field: "natsjs.StreamConfig.Replicas", Reason: fmt.Sprintf("must be 1..5, got %d", c.Replicas)}
	}
	return nil
}

// EnsureStream creates the stream from cfg if it does not exist. If it
// exists, it sets the fields cfg names (Subjects, Duplicates, MaxAge,
// Replicas, and AllowAtomicPublish on a server that has it) where they
// differ, defaults included, and leaves every other field as it is: limits,
// discard policy, description, placement and the rest belong to whoever
// runs the broker. The stream's storage cannot
// change; a mismatch is a configuration error. Provisioned says what it did.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, Provisioned, error) {
	if err := cfg.check(); err != nil {
		return nil, Provisioned{}, err
	}
	fail := func(err error) (jetstream.Stream, Provisioned, error) {
		return nil, Provisioned{}, fmt.Errorf("natsjs: ensure stream %s: %w", cfg.Name, err)
	}
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	ownsAtomic := atomicServer(js.Conn())
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: cfg.Name, Subjects: cfg.Subjects, Duplicates: cfg.Duplicates, MaxAge: cfg.MaxAge,
			Replicas: cfg.Replicas, Storage: storage, AllowAtomicPublish: ownsAtomic && !cfg.NoAtomicPublish,
		})
		if err == nil {
			return s, Provisioned{Created: true}, nil
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // created meanwhile
			s, err = js.Stream(ctx, cfg.Name)
		}
	}
	if err != nil {
		return fail(err)
	}
	cur := s.CachedInfo().Config
	if cur.Storage != storage {
		return nil, Provisioned{}, &eos.ConfigError{Field: "natsjs.StreamConfig.Memory", Reason: fmt.Sprintf(
			"stream %s exists with %v, and JetStream cannot change a stream's storage", cfg.Name, cur.Storage)}
	}
	var p Provisioned
	if !sameSet(cur.Subjects, cfg.Subjects) {
		p.change("Subjects", subjectsText(cur.Subjects), subjectsText(cfg.Subjects))
		cur.Subjects = cfg.Subjects
	}
	set(&p, "Duplicates", &cur.Duplicates, cfg.Duplicates)
	set(&p, "MaxAge", &cur.MaxAge, cfg.MaxAge)
	set(&p, "Replicas", &cur.Replicas, cfg.Replicas)
	if ownsAtomic {
		// JetStream refuses atomic publish with the async persist mode,
		// which belongs to the operator.
		set(&p, "AllowAtomicPublish", &cur.AllowAtomicPublish, !cfg.NoAtomicPublish && cur.PersistMode != jetstream.AsyncPersistMode)
	}
	if len(p.Changed) == 0 {
		return s, p, nil
	}
	if s, err = js.UpdateStream(ctx, cur); err != nil {
		return fail(fmt.Errorf("update %s: %w", p, err))
	}
	return s, p, nil
}

// ConsumerConfig is what eos needs of a durable pull consumer. Defaults are
// applied by [EnsureConsumer].
type ConsumerConfig struct {
	// Stream the consumer reads. Required.
	Stream string
	// Durable name. Required: letters, digits, '-' and '_'.
	Durable string
	// FilterSubject narrows the stream's subjects; empty takes all.
	FilterSubject string
	// AckWait is how long JetStream waits for an ack before redelivering.
	// Default 30s, at least 1s. It runs from the delivery to the client.
	// The Subscriber keeps a batch the inbox holds alive however long it
	// takes, but not the messages pulled ahead (about one batch): AckWait
	// must exceed the time they wait, a batch's processing, or they come
	// back while still buffered (harmless, but wasted work).
	AckWait time.Duration
	// MaxDeliver bounds deliveries of one message. Default 1000. Keep it
	// well above the inbox's MaxAttempts and the redeliveries a store outage
	// causes: past it JetStream stops delivering the message, and the inbox
	// never sees it again.
	MaxDeliver int
	// BackOff, if set, replaces AckWait: delivery k waits BackOff[k-1] (the
	// last step for later deliveries), and AckWait becomes BackOff[0], as on
	// the server.
	BackOff []time.Duration
	// MaxAckPending bounds unacknowledged messages. Default 20000.
	MaxAckPending int
}

func (c *ConsumerConfig) check() error {
	if err := checkName("natsjs.ConsumerConfig.Stream", c.Stream); err != nil {
		return err
	}
	if err := checkName("natsjs.ConsumerConfig.Durable", c.Durable); err != nil {
		return err
	}
	if len(c.BackOff) > 0 {
		c.AckWait = c.BackOff[0]
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 1000
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 20000
	}
	switch {
	case c.AckWait < time.Second:
		return &eos.ConfigError{Field: "natsjs.ConsumerConfig.AckWait", Reason: fmt.Sprintf("shorter than 1s (%v; with BackOff, its first step)", c.AckWait)}
	case c.MaxDeliver < 0:
		return &eos.ConfigError{Field: "natsjs.ConsumerConfig.MaxDeliver", Reason: "negative: unlimited redelivery has no horizon for the dedupe retention to cover"}
	case len(c.BackOff) > 0 && len(c.BackOff) >= c.MaxDeliver:
		return &eos.ConfigError{Field: "natsjs.ConsumerConfig.BackOff", Reason: "must have fewer steps than MaxDeliver"}
	case c.MaxAckPending < 1:
		return &eos.ConfigError{Field: "natsjs.ConsumerConfig.MaxAckPending", Reason: "must be positive"}
	}
	for _, b := range c.BackOff {
		if b <= 0 {
			return &eos.ConfigError{Field: "natsjs.ConsumerConfig.BackOff", Reason: "steps must be positive"}
		}
	}
	return nil
}

// EnsureConsumer creates the durable pull consumer from cfg if it does not
// exist. If it exists, it sets the fields cfg names (the filter, explicit
// acks, AckWait, MaxDeliver, BackOff, MaxAckPending) where they differ,
// defaults included, and leaves every other field as it is. Fields
// JetStream cannot change on a consumer (its ack policy, for one) make the
// update fail with the server's error. Provisioned says what it did.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig) (jetstream.Consumer, Provisioned, error) {
	if err := cfg.check(); err != nil {
		return nil, Provisioned{}, err
	}
	fail := func(err error) (jetstream.Consumer, Provisioned, error) {
		return nil, Provisioned{}, fmt.Errorf("natsjs: ensure consumer %s on %s: %w", cfg.Durable, cfg.Stream, err)
	}
	c, err := js.Consumer(ctx, cfg.Stream, cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = js.CreateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
			Durable: cfg.Durable, FilterSubject: cfg.FilterSubject, AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, BackOff: cfg.BackOff, MaxAckPending: cfg.MaxAckPending,
		})
		if err == nil {
			return c, Provisioned{Created: true}, nil
		}
		if errors.Is(err, jetstream.ErrConsumerExists) { // created meanwhile
			c, err = js.Consumer(ctx, cfg.Stream, cfg.Durable)
		}
	}
	if err != nil {
		return fail(err)
	}
	cur := c.CachedInfo().Config
	var p Provisioned
	if filters := append(slices.Clone(cur.FilterSubjects), cur.FilterSubject); !sameSet(filters, []string{cfg.FilterSubject}) {
		p.change("FilterSubject", subjectsText(filters), subjectsText([]string{cfg.FilterSubject}))
		cur.FilterSubject, cur.FilterSubjects = cfg.FilterSubject, nil
	}
	set(&p, "AckPolicy", &cur.AckPolicy, jetstream.AckExplicitPolicy)
	set(&p, "AckWait", &cur.AckWait, cfg.AckWait)
	set(&p, "MaxDeliver", &cur.MaxDeliver, cfg.MaxDeliver)
	if !slices.Equal(cur.BackOff, cfg.BackOff) {
		p.change("BackOff", cur.BackOff, cfg.BackOff)
		cur.BackOff = cfg.BackOff
	}
	set(&p, "MaxAckPending", &cur.MaxAckPending, cfg.MaxAckPending)
	if len(p.Changed) == 0 {
		return c, p, nil
	}
	if c, err = js.UpdateConsumer(ctx, cfg.Stream, cur); err != nil {
		return fail(fmt.Errorf("update %s: %w", p, err))
	}
	return c, p, nil
}

// Provisioned says what EnsureStream or EnsureConsumer did.
type Provisioned struct {
	// Created is set when the stream or consumer did not exist.
	Created bool
	// Changed lists the fields set on an existing one; empty when they
	// already matched.
	Changed []Change
}

// Change is one field set on an existing stream or consumer.
type Change struct {
	Field    string // as named in jetstream.StreamConfig or ConsumerConfig
	From, To string
}

func (p Provisioned) String() string {
	if p.Created {
		return "created"
	}
	if len(p.Changed) == 0 {
		return "unchanged"
	}
	var b strings.Builder
	b.WriteString("updated")
	for i, c := range p.Changed {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s %s → %s", c.Field, c.From, c.To)
	}
	return b.String()
}

func (p *Provisioned) change(field string, from, to any) {
	p.Changed = append(p.Changed, Change{Field: field, From: fmt.Sprint(from), To: fmt.Sprint(to)})
}

// set sets *cur to want, recording the change in p, if they differ.
func set[T comparable](p *Provisioned, field string, cur *T, want T) {
	if *cur != want {
		p.change(field, *cur, want)
		*cur = want
	}
}

// subjectSet returns the subjects of ss, sorted, without repeats or empty
// strings.
func subjectSet(ss []string) []string {
	ss = slices.DeleteFunc(slices.Clone(ss), func(s string) bool { return s == "" })
	slices.Sort(ss)
	return slices.Compact(ss)
}

// sameSet reports whether a and b hold the same subjects.
func sameSet(a, b []string) bool { return slices.Equal(subjectSet(a), subjectSet(b)) }

// subjectsText shows a list of subjects; no subject is all of them.
func subjectsText(ss []string) string {
	if ss = subjectSet(ss); len(ss) == 0 {
		return "(all)"
	}
	return strings.Join(ss, " ")
}

// RedeliveryHorizon is how late, after the inbox claimed a message, the
// stream and consumer can bring it back; the inbox's dedupe retention must
// be at least this (compact.Config.RedeliveryHorizon, which compact
// enforces). It is the longer of the stream's duplicate window and the
// time the consumer keeps redelivering (MaxDeliver waits of AckWait, or the
// BackOff steps), and, when republish is longer than the duplicate window,
// republish plus that redelivery time.
//
// republish is the longest time after a message's first publish that a
// producer may publish it again: the relay re-publishes what it published
// but could not mark sent, after a crash or through a broker outage, for as
// long as those last; a producer's own retries likewise. Inside the
// duplicate window JetStream drops a re-publish; past it the copy is a new
// stream message, delivered and redelivered like any other, which only the
// inbox's dedupe record can suppress. Zero says re-publishes stay inside
// the window.
func RedeliveryHorizon(s StreamConfig, c ConsumerConfig, republish time.Duration) (time.Duration, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if err := c.check(); err != nil {
		return 0, err
	}
	if republish < 0 {
		return 0, &eos.ConfigError{Field: "natsjs.RedeliveryHorizon republish", Reason: fmt.Sprintf("negative (%v)", republish)}
	}
	var redeliver time.Duration
	if n := len(c.BackOff); n > 0 {
		// Delivery k waits BackOff[min(k-1, n-1)] for its ack.
		for _, b := range c.BackOff { // fewer steps than MaxDeliver (check)
			redeliver = satAdd(redeliver, b)
		}
		redeliver = satAdd(redeliver, satMul(c.BackOff[n-1], c.MaxDeliver-n))
	} else {
		redeliver = satMul(c.AckWait, c.MaxDeliver)
	}
	horizon := max(s.Duplicates, redeliver)
	if republish > s.Duplicates {
		horizon = max(horizon, satAdd(republish, redeliver))
	}
	return horizon, nil
}

const maxDuration = time.Duration(math.MaxInt64)

// satAdd and satMul are + and × of non-negative durations, saturating at
// the largest duration.
func satAdd(a, b time.Duration) time.Duration {
	if a > maxDuration-b {
		return maxDuration
	}
	return a + b
}

func satMul(d time.Duration, n int) time.Duration {
	if n <= 0 || d <= 0 {
		return 0
	}
	if d > maxDuration/time.Duration(n) {
		return maxDuration
	}
	return d * time.Duration(n)
}

func checkName(field, name string) error {
	if name == "" {
		return &eos.ConfigError{Field: field, Reason: "empty"}
	}
	if len(name) > 255 {
		return &eos.ConfigError{Field: field, Reason: "longer than 255 bytes"}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return &eos.ConfigError{Field: field, Reason: fmt.Sprintf("invalid character %q at byte %d", c, i)}
		}
	}
	return nil
}

package intents

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/torture/internal/private"
)

// Kind says what an intent announces.
type Kind string

// Intent kinds.
const (
	Order  Kind = "order"  // first publish of an order
	Retry  Kind = "retry"  // the same order again in the same batch (inside the dedupe window)
	Copy   Kind = "copy"   // the same order again past the dedupe window
	Poison Kind = "poison" // a malformed input
	// Resend: a publish whose outcome the producer does not know (an error
	// or a timeout instead of a PubAck), about to be made again.
	Resend Kind = "resend"
)

// Intent is one line of the log.
type Intent struct {
	Kind    Kind   `json:"kind"`
	ID      string `json:"id"`
	Account string `json:"account,omitempty"`
	Amount  int64  `json:"amount,omitempty"`
	Payload []byte `json:"payload,omitempty"` // poison only
	Why     string `json:"why,omitempty"`     // poison only
}

// ErrLog is wrapped by every failure to write or read the log. A producer
// stops at one: a publish the log does not announce must not be made.
var ErrLog = errors.New("intent log")

// Log appends intents to a file, fsync'd before the publish they announce.
// A nil *Log records nothing.
type Log struct {
	f *os.File
	w *bufio.Writer
}

// Create creates (or truncates) the log at path, readable by its owner
// only.
func Create(path string) (*Log, error) {
	f, err := private.Create(path, true)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLog, err)
	}
	return &Log{f: f, w: bufio.NewWriter(f)}, nil
}

// Orders records a batch of envelopes: the first of each id is an order, a
// later one in the batch a retry.
func (l *Log) Orders(envs []outbox.Envelope) error {
	if l == nil {
		return nil
	}
	seen := make(map[string]bool, len(envs))
	for _, e := range envs {
		it := Intent{Kind: Order, ID: e.Message.ID}
		if seen[it.ID] {
			it.Kind = Retry
		} else if o, err := payments.ParseOrder(e.Message.Payload); err == nil {
			it.Account, it.Amount = o.Account, o.Amount
		}
		seen[it.ID] = true
		if err := l.add(it); err != nil {
			return err
		}
	}
	return l.sync()
}

// Copy records the copy of order id published past the dedupe window.
func (l *Log) Copy(id string) error {
	if l == nil {
		return nil
	}
	if err := l.add(Intent{Kind: Copy, ID: id}); err != nil {
		return err
	}
	return l.sync()
}

// Resend records that the publishes of envs ended without a PubAck: the
// broker may or may not hold them, and the producer sends them again.
func (l *Log) Resend(envs []outbox.Envelope) error {
	if l == nil || len(envs) == 0 {
		return nil
	}
	for _, e := range envs {
		if err := l.add(Intent{Kind: Resend, ID: e.Message.ID}); err != nil {
			return err
		}
	}
	return l.sync()
}

// Poison records a malformed input.
func (l *Log) Poison(b payments.BadInput) error {
	if l == nil {
		return nil
	}
	if err := l.add(Intent{Kind: Poison, ID: b.Message.ID, Payload: b.Message.Payload, Why: b.Why}); err != nil {
		return err
	}
	return l.sync()
}

func (l *Log) add(it Intent) error {
	raw, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLog, err)
	}
	raw = append(raw, '\n')
	if _, err := l.w.Write(raw); err != nil {
		return fmt.Errorf("%w: %w", ErrLog, err)
	}
	return nil
}

// sync makes what was added durable before the caller publishes it.
func (l *Log) sync() error {
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("%w: %w", ErrLog, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("%w: %w", ErrLog, err)
	}
	return nil
}

// Close flushes and closes the log.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	return errors.Join(l.w.Flush(), l.f.Close())
}

// Read reads the log at path.
func Read(path string) ([]Intent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLog, err)
	}
	defer f.Close()
	var out []Intent
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var it Intent
		err := dec.Decode(&it)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w %s: line %d: %w", ErrLog, path, len(out)+1, err)
		}
		out = append(out, it)
	}
}

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/outbox"
)

// intent is one line of the producer's intent log: what it is about to
// publish. The torture checker reads the log instead of trusting anything
// the producer or the workers count.
type intent struct {
	Kind    string `json:"kind"` // intentOrder, intentRetry, intentCopy, intentResend, intentPoison
	ID      string `json:"id"`
	Account string `json:"account,omitempty"`
	Amount  int64  `json:"amount,omitempty"`
	Payload []byte `json:"payload,omitempty"` // poison only
	Why     string `json:"why,omitempty"`     // poison only
}

// Intent kinds.
const (
	intentOrder  = "order"  // first publish of an order
	intentRetry  = "retry"  // the same order again in the same batch (inside the dedupe window)
	intentCopy   = "copy"   // the same order again past the dedupe window
	intentPoison = "poison" // a malformed input
	// intentResend: a publish whose outcome the producer does not know (an
	// error or a timeout instead of a PubAck), about to be made again.
	intentResend = "resend"
)

// errIntentLog is wrapped by every failure to write the intent log.
var errIntentLog = errors.New("intent log")

// intentLog appends intents to a file as JSON lines, fsync'd before the
// publish they announce. A nil *intentLog records nothing.
type intentLog struct {
	f *os.File
	w *bufio.Writer
}

func createIntentLog(path string) (*intentLog, error) {
	f, err := createPrivate(path, true)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errIntentLog, err)
	}
	return &intentLog{f: f, w: bufio.NewWriter(f)}, nil
}

// orders records a batch of envelopes: the first of each id is an order,
// a later one in the batch a retry.
func (l *intentLog) orders(envs []outbox.Envelope) error {
	if l == nil {
		return nil
	}
	seen := make(map[string]bool, len(envs))
	for _, e := range envs {
		it := intent{Kind: intentOrder, ID: e.Message.ID}
		if seen[it.ID] {
			it.Kind = intentRetry
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

func (l *intentLog) copy(id string) error {
	if l == nil {
		return nil
	}
	if err := l.add(intent{Kind: intentCopy, ID: id}); err != nil {
		return err
	}
	return l.sync()
}

// resend records that the publishes of envs ended without a PubAck: the
// broker may or may not hold them, and the producer sends them again.
func (l *intentLog) resend(envs []outbox.Envelope) error {
	if l == nil || len(envs) == 0 {
		return nil
	}
	for _, e := range envs {
		if err := l.add(intent{Kind: intentResend, ID: e.Message.ID}); err != nil {
			return err
		}
	}
	return l.sync()
}

func (l *intentLog) poison(b payments.BadInput) error {
	if l == nil {
		return nil
	}
	if err := l.add(intent{Kind: intentPoison, ID: b.Message.ID, Payload: b.Message.Payload, Why: b.Why}); err != nil {
		return err
	}
	return l.sync()
}

func (l *intentLog) add(it intent) error {
	raw, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("%w: %w", errIntentLog, err)
	}
	raw = append(raw, '\n')
	if _, err := l.w.Write(raw); err != nil {
		return fmt.Errorf("%w: %w", errIntentLog, err)
	}
	return nil
}

// sync makes what was added durable before the caller publishes it.
func (l *intentLog) sync() error {
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("%w: %w", errIntentLog, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("%w: %w", errIntentLog, err)
	}
	return nil
}

func (l *intentLog) close() error {
	if l == nil {
		return nil
	}
	return errors.Join(l.w.Flush(), l.f.Close())
}

// readIntents reads an intent log.
func readIntents(path string) ([]intent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errIntentLog, err)
	}
	defer f.Close()
	var out []intent
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var it intent
		err := dec.Decode(&it)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("intent log %s: line %d: %w", path, len(out)+1, err)
		}
		out = append(out, it)
	}
}

package worker

import (
	"context"
	"database/sql"
	"slices"
	"time"

	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/transport/kafka"
	"github.com/eoskit/eos/transport/natsjs"
)

// Failpoints of the workers' Driver wrapper. FailDriverCommit is evaluated
// inside Commit, before the transaction commits: it is the last step of an
// inbox batch before the commit, after every inbox failpoint, so a crash
// there finds out an acknowledgement sent before the commit (the message
// is acked, its effects are never committed, and the checker counts it
// lost), which a crash at inbox.before_commit cannot if the ack comes
// after that point. FailDriverBegin is evaluated when a transaction
// begins: an error there is a store failure, which the inbox reports to
// its ErrorHook and stalls on.
const (
	FailDriverCommit = "driver.commit"
	FailDriverBegin  = "driver.begin"
)

// FailpointNames returns the names of the failpoints a worker on
// transport evaluates, for failpoint.Parse: those of the packages it runs
// (the transport's alone: another's would never fire), and its Driver's.
func FailpointNames(transport string) []string {
	tr := natsjs.FailpointNames()
	if transport == TransportKafka {
		tr = kafka.FailpointNames()
	}
	return slices.Concat(inbox.FailpointNames(), outbox.FailpointNames(), tr, callonce.FailpointNames(),
		[]string{FailDriverCommit, FailDriverBegin})
}

// faultyDriver is a Driver whose Begin and Commit evaluate the failpoints
// first. It needs nothing from the library: any Driver can be wrapped.
type faultyDriver struct {
	driver.Driver[*sql.Tx]
	fps *failpoint.Set
}

func (d faultyDriver) Begin(ctx context.Context) (*sql.Tx, error) {
	if err := d.fps.Eval(FailDriverBegin); err != nil {
		return nil, err
	}
	return d.Driver.Begin(ctx)
}

func (d faultyDriver) Commit(ctx context.Context, tx *sql.Tx) error {
	if err := d.fps.Eval(FailDriverCommit); err != nil {
		return err // the caller rolls back
	}
	return d.Driver.Commit(ctx, tx)
}

// faultyClaimDriver keeps the optional one-round-trip claim of the wrapped
// driver visible, and fails it at FailDriverBegin as Begin does.
type faultyClaimDriver struct {
	faultyDriver
	cb driver.ClaimBeginner[*sql.Tx]
}

func (d faultyClaimDriver) BeginClaim(ctx context.Context, consumer string, now time.Time, claims []driver.Claim) (*sql.Tx, bool, error) {
	if err := d.fps.Eval(FailDriverBegin); err != nil {
		return nil, false, err
	}
	return d.cb.BeginClaim(ctx, consumer, now, claims)
}

// withFailpoints wraps d so that its Begin and Commit evaluate the
// failpoints on fps (d itself when fps is nil).
func withFailpoints(d driver.Driver[*sql.Tx], fps *failpoint.Set) driver.Driver[*sql.Tx] {
	if fps == nil {
		return d
	}
	w := faultyDriver{Driver: d, fps: fps}
	if cb, ok := d.(driver.ClaimBeginner[*sql.Tx]); ok {
		return faultyClaimDriver{w, cb}
	}
	return w
}

package driver

import (
	"context"
	"errors"
	"time"
)

// Driver is one database engine seen by eos. TTx is the transaction type
// handed to user code.
//
// Implementations must be safe for concurrent use.
type Driver[TTx any] interface {
	// Name is the engine's name, e.g. "sqlite" or "postgres".
	Name() string
	// Begin starts a read-write transaction.
	Begin(ctx context.Context) (TTx, error)
	// Commit commits tx. An error may mean the outcome is unknown: eos
	// treats it as "maybe committed" and relies on the claim to make a retry
	// safe.
	Commit(ctx context.Context, tx TTx) error
	// Rollback aborts tx. Rolling back a finished transaction is not an
	// error.
	Rollback(ctx context.Context, tx TTx) error
	// Executor returns eos's own statements bound to tx.
	Executor(tx TTx) Executor
	// OutboxClaim takes up to limit unsent outbox rows for one relay, in
	// order per key; see [OutboxBatch]. It returns an empty batch when there
	// is nothing to send.
	OutboxClaim(ctx context.Context, limit int) (OutboxBatch, error)
	// OutboxWakeup returns a channel that receives (without blocking the
	// sender; signals coalesce) after rows were enqueued, and a function that
	// stops the subscription. Drivers without a native mechanism return a
	// channel fed by in-process enqueues only; the relay polls besides.
	OutboxWakeup(ctx context.Context) (<-chan struct{}, func(), error)
	// Migrator returns the driver's schema migrator.
	Migrator() Migrator
}

// Executor is the set of statements eos runs inside one transaction. Every
// method takes the whole set of rows it acts on: the number of statements per
// inbox batch must not grow with the batch.
type Executor interface {
	// InboxClaim inserts (consumer, id, fingerprint, now) for every claim
	// that is not already present, in one set-based statement, and reports
	// for each claim, by index, whether this call inserted it. Ids within
	// claims are distinct.
	InboxClaim(ctx context.Context, consumer string, now time.Time, claims []Claim) (fresh []bool, err error)
	// InboxFingerprints returns the stored fingerprint of each given id that
	// is claimed for consumer.
	InboxFingerprints(ctx context.Context, consumer string, ids []string) (map[string][]byte, error)
	// InboxUnclaim deletes the claims of ids for consumer.
	InboxUnclaim(ctx context.Context, consumer string, ids []string) error
	// InboxClaimsList returns claims of consumer in id order (bytewise),
	// starting after afterID (empty: from the start), at most limit: what
	// reconciliation reads to find applies the source does not explain,
	// a page at a time.
	InboxClaimsList(ctx context.Context, consumer, afterID string, limit int) ([]ClaimRecord, error)

	// SavepointCreate, SavepointRollback and SavepointRelease manage a named
	// savepoint. name is a plain identifier chosen by eos.
	SavepointCreate(ctx context.Context, name string) error
	SavepointRollback(ctx context.Context, name string) error
	SavepointRelease(ctx context.Context, name string) error

	// FailureRecord counts one failed attempt of (consumer, id) with its error
	// text and returns the attempts so far, this one included.
	//
	// Text fields of the rows and arguments eos passes (error text, the key
	// and headers of a dead letter) are already storable: valid UTF-8, no NUL
	// bytes, bounded (internal/storable). Drivers store them as they are.
	FailureRecord(ctx context.Context, consumer, id, errText string, now time.Time) (attempts int, err error)
	// FailuresClear forgets the attempts of ids.
	FailuresClear(ctx context.Context, consumer string, ids []string) error

	// InboxStats counts the rows eos keeps for consumer: claims, recorded
	// failed attempts, dead letters and quarantined deliveries.
	InboxStats(ctx context.Context, consumer string) (InboxStats, error)

	QuarantineInsert(ctx context.Context, rows []Quarantined) error
	// QuarantineList returns quarantined deliveries of consumer in Seq
	// order, starting after afterSeq (0: from the start).
	QuarantineList(ctx context.Context, consumer string, afterSeq int64, limit int) ([]Quarantined, error)

	DeadLettersInsert(ctx context.Context, rows []DeadLetter) error
	// DeadLettersList returns dead letters of consumer in id order, starting
	// after afterID (empty: from the start).
	DeadLettersList(ctx context.Context, consumer, afterID string, limit int) ([]DeadLetter, error)
	// DeadLettersTake deletes the dead letters of consumer with the given ids
	// and returns the rows it deleted, in no particular order. A row another
	// transaction took first is not returned: callers act only on what they
	// took, which is what makes two overlapping requeues safe.
	DeadLettersTake(ctx context.Context, consumer string, ids []string) ([]DeadLetter, error)

	// OutboxInsert appends rows to the outbox (and, where the engine has a
	// notification mechanism, wakes relays once the transaction commits).
	OutboxInsert(ctx context.Context, rows []OutboxRow) error
	// OutboxStats reports the number of unsent rows and the enqueue time of
	// the oldest (zero when none).
	OutboxStats(ctx context.Context) (unsent int64, oldest time.Time, err error)
	// OutboxUnsentList returns unsent rows that are not parked, in seq
	// order, starting after afterSeq (0: from the start), at most limit; in
	// the executor's transaction, so rows it enqueued are among them (for
	// tests: outboxtest.RequireEnqueuedTx).
	OutboxUnsentList(ctx context.Context, afterSeq int64, limit int) ([]OutboxRow, error)
	// OutboxParkedStats reports the number of parked rows (see
	// [OutboxOutcome]) and when the oldest was parked (zero when none).
	OutboxParkedStats(ctx context.Context) (parked int64, oldest time.Time, err error)
	// OutboxParkedList returns parked rows in seq order, starting after
	// afterSeq (0: from the start), at most limit.
	OutboxParkedList(ctx context.Context, afterSeq int64, limit int) ([]ParkedOutboxRow, error)
	// OutboxParkedRequeue makes the parked rows among seqs unsent again:
	// each becomes its key's next row to send. It reports how many rows this
	// statement changed; seqs that are not parked are left alone. Like
	// OutboxInsert, it wakes relays once the transaction commits.
	OutboxParkedRequeue(ctx context.Context, seqs []int64) (int, error)
	// OutboxParkedDelete deletes the parked rows among seqs, unblocking
	// their keys (and waking relays), and returns the rows this statement
	// deleted, in seq order.
	OutboxParkedDelete(ctx context.Context, seqs []int64) ([]ParkedOutboxRow, error)

	// DedupeClaim claims a dedupe key (package dedupe) in one statement, so
	// that of concurrent claims of one key exactly one wins. It inserts a
	// leased record (generation 1) for p, or takes the existing record over
	// (generation + 1, p's fingerprint, token and times; result cleared)
	// when that record is past its expiry, or has p's fingerprint and is
	// released or leased with a lease that ended by p.Now. It returns the
	// record as it stands after the call and whether this call claimed it.
	DedupeClaim(ctx context.Context, p DedupeClaimParams) (rec DedupeRecord, claimed bool, err error)
	// DedupeComplete stores p.Result in the record leased to p's token and
	// generation, ends the lease and sets the record's expiry. It reports
	// false, changing nothing, when there is no such leased record or it
	// is past its expiry (the caller is fenced).
	DedupeComplete(ctx context.Context, p DedupeCompleteParams) (bool, error)
	// DedupeRelease ends the lease of p's token and generation without a
	// result (the key may be claimed again), as DedupeComplete does.
	DedupeRelease(ctx context.Context, p DedupeReleaseParams) (bool, error)
	// DedupeRenew moves the end of the lease of p's token and generation
	// to p.LeaseExpires, when that lease has not ended by p.Now; false
	// otherwise.
	DedupeRenew(ctx context.Context, p DedupeRenewParams) (bool, error)

	// Compact deletes up to limit rows of what older than before and
	// reports how many it deleted.
	Compact(ctx context.Context, what Compactable, before time.Time, limit int) (int64, error)

	// OffsetsGet returns the stored offsets of consumer on topic: for each
	// partition with a row, the offset of the next record to apply.
	OffsetsGet(ctx context.Context, consumer, topic string) (map[int32]int64, error)
	// OffsetsAdvance moves stored offsets of consumer, each a compare and
	// set: an advance applies only if its partition's row holds From (or,
	// with From = OffsetNone, has no row yet). When one does not, it returns
	// an error wrapping ErrOffsetConflict and the caller must roll back:
	// another consumer applied those records since From was read (the
	// partition moved to it in a rebalance).
	OffsetsAdvance(ctx context.Context, consumer string, advances []OffsetAdvance) error
}

// DedupeState is the state of a dedupe record.
type DedupeState string

const (
	DedupeLeased    DedupeState = "leased"    // held by Token until LeaseExpires
	DedupeCompleted DedupeState = "completed" // done; Result is stored
	DedupeReleased  DedupeState = "released"  // given up without a result
)

// DedupeRecord is one dedupe key's record. Scope and key are any bytes
// (drivers store them as bytes, compared bytewise).
type DedupeRecord struct {
	State       DedupeState
	Fingerprint []byte
	// Token is the current lease's owner, "" unless State is DedupeLeased.
	Token      string
	Generation int64
	// LeaseExpires is when the lease ends (DedupeLeased).
	LeaseExpires time.Time
	// Result and CompletedAt are set when State is DedupeCompleted.
	Result      []byte
	CompletedAt time.Time
	// Expires is when the record may be deleted, its key then being free:
	// never before LeaseExpires.
	Expires time.Time
}

// DedupeClaimParams are the arguments of Executor.DedupeClaim.
type DedupeClaimParams struct {
	Scope, Key  string
	Fingerprint []byte
	Token       string
	// Now is the caller's clock; LeaseExpires and Expires are those of
	// the record if this call claims it.
	Now, LeaseExpires, Expires time.Time
}

// DedupeFence names the lease a call acts for.
type DedupeFence struct {
	Scope, Key string
	Token      string
	Generation int64
}

// DedupeCompleteParams are the arguments of Executor.DedupeComplete.
type DedupeCompleteParams struct {
	DedupeFence
	Result []byte
	// Now is when the result is stored (CompletedAt); Expires is the
	// record's new expiry.
	Now, Expires time.Time
}

// DedupeReleaseParams are the arguments of Executor.DedupeRelease.
type DedupeReleaseParams struct {
	DedupeFence
	Now, Expires time.Time
}

// DedupeRenewParams are the arguments of Executor.DedupeRenew.
type DedupeRenewParams struct {
	DedupeFence
	Now, LeaseExpires, Expires time.Time
}

// OffsetNone is OffsetAdvance.From for a partition without a stored offset.
const OffsetNone int64 = -1

// OffsetAdvance is one stored offset moved (see Executor.OffsetsAdvance).
type OffsetAdvance struct {
	Topic     string
	Partition int32
	// From is the offset the row must hold, or OffsetNone for no row.
	From int64
	// To is the offset of the next record to apply after this batch.
	To int64
}

// ErrOffsetConflict is wrapped by Executor.OffsetsAdvance when a stored
// offset is not the one expected: the transaction must not commit.
var ErrOffsetConflict = errors.New("eos: stored offset moved by another consumer")

// Compactable names a kind of row the compactor deletes.
type Compactable string

const (
	CompactInbox    Compactable = "inbox"    // dedupe records, by claim time
	CompactFailures Compactable = "failures" // attempt counters, by last attempt
	CompactOutbox   Compactable = "outbox"   // sent outbox rows, by send time
	// CompactQuarantine: quarantined deliveries, by quarantine time.
	CompactQuarantine Compactable = "quarantine"
	// CompactDeadLetters: dead letters, by the time they were dead-lettered.
	CompactDeadLetters Compactable = "dead_letters"
	// CompactDedupe: dedupe records (package dedupe) past their own
	// expiry (Expires ≤ before), which each record carries from when it
	// was written: before is the current time, not a retention horizon.
	CompactDedupe Compactable = "dedupe"
)

// InboxStats are the counts of one consumer's rows (see Executor.InboxStats).
type InboxStats struct {
	Claims int64 // dedupe records: ids claimed and not compacted
	// Attempts is the sum of the failed attempts recorded and not cleared
	// (see FailureRecord), those of dead letters included.
	Attempts    int64
	DeadLetters int64
	Quarantined int64
}

// ClaimRecord is one stored claim: an id a consumer applied, and when.
type ClaimRecord struct {
	ID        string
	ClaimedAt time.Time
}

// Claim is one id to claim for a consumer.
type Claim struct {
	ID string
	// Fingerprint is exactly eos.FingerprintSize bytes (see eos.Fingerprint).
	Fingerprint []byte
}

// Quarantined is a delivery whose id was already claimed with a different
// fingerprint. It is stored, not applied.
type Quarantined struct {
	Seq               int64 // assigned by the engine on insert; the order of the quarantine
	Consumer          string
	ID                string
	StoredFingerprint []byte
	Fingerprint       []byte
	Key               string
	Payload           []byte
	Headers           map[string]string
	Subject           string // the subject the conflicting delivery came on (eos.Message.Subject)
	At                time.Time
}

// DeadLetter is a message that failed MaxAttempts times (or once, with a
// permanent error), or a delivery that failed validation (Invalid). Its id
// stays claimed so that redeliveries are suppressed until it is requeued or
// its claim is compacted (for an invalid delivery, only when the transport
// gave its position: see Invalid).
type DeadLetter struct {
	Consumer    string
	ID          string
	Key         string
	Payload     []byte
	Headers     map[string]string
	Subject     string // the message's Subject: Requeue hands it to the handler again
	Fingerprint []byte
	CreatedAt   time.Time // the message's CreatedAt
	Attempts    int
	LastError   string
	At          time.Time // when it was dead-lettered
	// Invalid is set for a delivery that failed validation: ID is then an
	// id eos made for the record, OriginalID the id as it arrived, and Key,
	// Headers and Payload a storable copy of what arrived, bounded by the
	// limits (Payload cut at the payload limit). It is never requeued.
	Invalid    bool
	OriginalID string
	// Position is where the transport holds the delivery (e.g. a stream and
	// sequence), when it says; empty otherwise.
	Position string
	// PayloadSize is the size in bytes of the payload as it arrived.
	PayloadSize int
}

// OutboxRow is one message waiting in the outbox.
type OutboxRow struct {
	Seq        int64 // assigned by the engine on insert; the order of the outbox
	ID         string
	Topic      string
	Key        string
	Payload    []byte
	Headers    map[string]string
	CreatedAt  time.Time // the message's CreatedAt
	EnqueuedAt time.Time
}

// OutboxBatch is a set of outbox rows claimed by one relay. While a batch is
// open, no other relay of the same database takes a row with a key the batch
// holds, so per-key order holds across relays. Exactly one of Complete or
// Abort must be called.
//
// A claim never returns a parked row, nor a row with a non-empty key that
// comes after a parked row of the same key: a parked row blocks its key
// until it is requeued or deleted, and only its key.
type OutboxBatch interface {
	// Rows are the claimed rows in Seq order.
	Rows() []OutboxRow
	// Complete records what the relay did with the batch, in one
	// transaction, and releases the batch. Rows named in neither list stay
	// unsent.
	Complete(ctx context.Context, o OutboxOutcome) error
	// Abort releases the batch without changes.
	Abort(ctx context.Context) error
}

// OutboxOutcome is what a relay did with a claimed batch. Seqs are those of
// the batch's rows.
type OutboxOutcome struct {
	// Sent are the rows the broker acknowledged.
	Sent []int64
	// Parked are rows that no retry can publish as they are (the broker
	// refuses them for good: no destination, too large). They leave the
	// relay's way with their error until an operator requeues or deletes
	// them.
	Parked []OutboxParking
	// At is when the rows were sent or parked.
	At time.Time
	// DeleteSent deletes the sent rows instead of marking them sent.
	DeleteSent bool
}

// Seqs returns the seqs of rows, for an OutboxOutcome.
func Seqs(rows []OutboxRow) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = r.Seq
	}
	return out
}

// OutboxParking is one row to park and why.
type OutboxParking struct {
	Seq int64
	// Error is storable text (valid UTF-8, no NUL, bounded).
	Error string
}

// ParkedOutboxRow is a parked outbox row with its error.
type ParkedOutboxRow struct {
	OutboxRow
	ParkedAt time.Time
	Error    string
}

// Migrator applies the driver's embedded, versioned schema migrations.
//
// Each call runs in exactly one transaction that holds the engine's
// migration lock (SQLite's write lock, a PostgreSQL advisory lock), so
// that two processes migrating at once apply each version once. That
// transaction creates the migrations table if it is missing (and, on
// PostgreSQL, the configured schema), reads the applied versions, and
// applies and records the pending ones.
type Migrator interface {
	// Up applies every pending migration in order and returns the versions
	// it applied. It uses one transaction for all of them, whatever their
	// number: on error none of them is applied, and a later Up starts over
	// from the same version.
	Up(ctx context.Context) ([]int, error)
	// Down reverts applied migrations down to (not including) version
	// target, newest first, in one transaction; Down(ctx, 0) removes the
	// whole schema.
	Down(ctx context.Context, target int) ([]int, error)
	// Status lists every known migration and whether it is applied. Its
	// transaction creates the migrations table if it is missing.
	Status(ctx context.Context) ([]MigrationStatus, error)
}

// Migration is one versioned schema change, rendered for a configuration
// (its table prefix and schema): SQL scripts of one or more statements,
// each meant to run in one transaction.
type Migration struct {
	Version  int
	Name     string // e.g. "init"; the file is NNNN_name.up.sql
	Up, Down string
}

// MigrationStatus is one migration's state.
type MigrationStatus struct {
	Version   int
	Name      string
	Applied   bool
	AppliedAt time.Time
}

// ClaimBeginner is an optional capability of a Driver: begin a transaction
// and claim a batch in one round trip, for engines where a round trip costs
// as much as the claim itself (PostgreSQL over a network).
//
// BeginClaim returns ok=true and an open transaction only when every claim
// was new. When any id was claimed before, or the driver cannot take this
// path now, it returns ok=false and nothing is left open: the caller falls
// back to Begin and InboxClaim. An error is a failure of the store.
type ClaimBeginner[TTx any] interface {
	BeginClaim(ctx context.Context, consumer string, now time.Time, claims []Claim) (tx TTx, ok bool, err error)
}

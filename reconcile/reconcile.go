package reconcile

import (
	"context"
	"errors"
	"hash/maphash"
	"strings"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/inbox"
)

// Reconciler compares a source with one consumer's claims, and with its
// database's outbox and effects. Make it with New; Run may be called any
// number of times, not concurrently.
type Reconciler[TTx any] struct {
	d     driver.Driver[TTx]
	src   Source
	cfg   Config
	hooks hooks
}

// New returns a Reconciler of d's consumer cfg.Consumer against src, or a
// *eos.ConfigError.
func New[TTx any](d driver.Driver[TTx], src Source, cfg Config) (*Reconciler[TTx], error) {
	if d == nil {
		return nil, &eos.ConfigError{Field: "reconcile.New driver", Reason: "nil"}
	}
	if src == nil {
		return nil, &eos.ConfigError{Field: "reconcile.New source", Reason: "nil"}
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	h, _ := newHooks(cfg.Hooks) // checked by WithDefaults
	return &Reconciler[TTx]{d: d, src: src, cfg: cfg, hooks: h}, nil
}

// run is the state of one Run.
type run struct {
	rep      *Report
	start    time.Time
	seen     idSet
	earliest time.Time // of the source's entries
	latest   time.Time
}

// Run makes one pass and returns its report. On error the report holds
// what was found before it, and the hooks are told both.
func (r *Reconciler[TTx]) Run(ctx context.Context) (*Report, error) {
	start := r.cfg.Test.Now()
	st := &run{start: start, seen: newIDSet(r.cfg.MaxSourceIDs),
		rep: &Report{Consumer: r.cfg.Consumer, Source: r.src.Name(), StartedAt: start}}
	err := r.pass(ctx, st)
	st.rep.FinishedAt = r.cfg.Test.Now()
	for _, h := range r.hooks.done {
		h.ReconcileDone(st.rep, err)
	}
	rep := st.rep
	log := r.cfg.Logger.With("consumer", rep.Consumer, "source", rep.Source)
	switch {
	case err != nil:
		log.ErrorContext(ctx, "reconcile: run failed", "err", err)
	case !rep.OK():
		log.WarnContext(ctx, "reconcile: findings", "missed", rep.Missed.Count, "unexpected", rep.Unexpected.Count,
			"duplicates", rep.Duplicates.Count, "partial_commits", rep.Partial.Count)
	default:
		log.InfoContext(ctx, "reconcile: ok", "entries", rep.SourceEntries, "uncheckable", rep.Uncheckable, "pending", rep.Pending)
	}
	return rep, err
}

func (r *Reconciler[TTx]) pass(ctx context.Context, st *run) error {
	if err := r.src.Scan(ctx, r.cfg.PageSize, func(page []Entry) error { return r.sourcePage(ctx, st, page) }); err != nil {
		return err
	}
	if st.rep.UnexpectedChecked = !st.seen.full; st.rep.UnexpectedChecked {
		if err := r.claims(ctx, st); err != nil {
			return err
		}
	}
	if r.cfg.Duplicates != "" {
		if err := r.duplicates(ctx, st); err != nil {
			return err
		}
		st.rep.DuplicatesChecked = true
	}
	if r.cfg.PartialAfter > 0 {
		st.rep.Outbox = r.cfg.Outbox
		if err := r.partial(ctx, st); err != nil {
			return err
		}
		st.rep.PartialChecked = true
	}
	return nil
}

// found records a finding in the report and tells the hooks.
func (r *Reconciler[TTx]) found(st *run, k Kind, id string) {
	st.rep.found(k).add(id, r.cfg.SampleSize)
	f := Finding{Kind: k, Consumer: r.cfg.Consumer, ID: id}
	if k == Partial {
		f.Outbox = r.cfg.Outbox
	}
	for _, h := range r.hooks.finding {
		h.ReconcileFinding(f)
	}
}

// read runs fn in a transaction it rolls back: reconciliation only reads.
func (r *Reconciler[TTx]) read(ctx context.Context, op string, fn func(ex driver.Executor) error) error {
	tx, err := r.d.Begin(ctx)
	if err != nil {
		return &eos.StoreError{Op: op, Err: err}
	}
	defer r.d.Rollback(context.WithoutCancel(ctx), tx)
	if err := fn(r.d.Executor(tx)); err != nil {
		return &eos.StoreError{Op: op, Err: err}
	}
	return nil
}

// sourcePage checks one page of the source against the claims.
func (r *Reconciler[TTx]) sourcePage(ctx context.Context, st *run, page []Entry) error {
	ids := make([]string, 0, len(page))
	fresh := make(map[string]bool, len(page)) // ids new to this run
	for _, e := range page {
		if e.ID == "" {
			st.rep.SourceWithoutID++
			continue
		}
		if !e.At.IsZero() && (st.earliest.IsZero() || e.At.Before(st.earliest)) {
			st.earliest = e.At
		}
		if e.At.After(st.latest) {
			st.latest = e.At
		}
		if _, dup := fresh[e.ID]; !dup {
			fresh[e.ID] = st.seen.add(e.ID)
			ids = append(ids, e.ID)
		}
	}
	var claimed map[string][]byte
	if err := r.read(ctx, "reconcile.claimed", func(ex driver.Executor) (err error) {
		claimed, err = ex.InboxFingerprints(ctx, r.cfg.Consumer, ids)
		return err
	}); err != nil {
		return err
	}
	settled := st.start.Add(-r.cfg.Settle)
	horizon := st.start.Add(-r.cfg.Retention)
	for _, e := range page {
		if e.ID == "" {
			continue
		}
		st.rep.SourceEntries++
		if _, ok := claimed[e.ID]; ok {
			st.rep.Applied++
			continue
		}
		if !fresh[e.ID] {
			continue // a republished id already judged in this run
		}
		fresh[e.ID] = false
		switch {
		case r.cfg.Settle > 0 && (e.At.IsZero() || e.At.After(settled)):
			st.rep.Pending++
		case r.cfg.Retention > 0 && (e.At.IsZero() || e.At.Before(horizon)):
			st.rep.Uncheckable++
		default:
			r.found(st, Missed, e.ID)
		}
	}
	if r.cfg.Progress != nil {
		r.cfg.Progress(st.rep.SourceEntries + st.rep.SourceWithoutID)
	}
	return nil
}

// claims looks for claims in the window that the source does not hold.
// Records of invalid deliveries (ids the inbox made) are not the source's
// ids and are left out.
//
// The window opens at Config.From, or the source's first entry. It closes
// at the run's start: any message claimed before then was stored before
// then, so within the source's snapshot. A [Bounded] source's range may
// end earlier: the window then closes after its last entry, since a claim
// made later may be of a message after the range.
func (r *Reconciler[TTx]) claims(ctx context.Context, st *run) error {
	from, to := r.cfg.From, st.start
	if from.IsZero() {
		from = st.earliest
	}
	if b, ok := r.src.(Bounded); ok && b.Bounded() {
		to = st.latest.Add(time.Nanosecond)
	}
	if st.rep.SourceEntries+st.rep.SourceWithoutID == 0 && r.cfg.From.IsZero() {
		return nil // an empty range gives no window: nothing says which claims it should explain
	}
	for after := ""; ; {
		var page []driver.ClaimRecord
		if err := r.read(ctx, "reconcile.claims", func(ex driver.Executor) (err error) {
			page, err = ex.InboxClaimsList(ctx, r.cfg.Consumer, after, r.cfg.PageSize)
			return err
		}); err != nil {
			return err
		}
		for _, c := range page {
			if c.ClaimedAt.Before(from) || !c.ClaimedAt.Before(to) || strings.HasPrefix(c.ID, inbox.InvalidIDPrefix) {
				continue
			}
			st.rep.ClaimsChecked++
			if !st.seen.has(c.ID) {
				r.found(st, Unexpected, c.ID)
			}
		}
		if len(page) < r.cfg.PageSize {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// duplicates runs the duplicates query.
func (r *Reconciler[TTx]) duplicates(ctx context.Context, st *run) error {
	fail := func(err error) error { return &SourceError{Source: "duplicates query", Err: err} }
	rows, err := r.cfg.DB.QueryContext(ctx, r.cfg.Duplicates)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return fail(errors.Join(errors.New("want two columns, an id and a count"), err))
		}
		if n > 1 {
			r.found(st, Duplicate, id)
		}
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return nil
}

// partial pages through the unsent outbox rows for those older than
// PartialAfter.
func (r *Reconciler[TTx]) partial(ctx context.Context, st *run) error {
	before := st.start.Add(-r.cfg.PartialAfter)
	for after := int64(0); ; {
		var page []driver.OutboxRow
		if err := r.read(ctx, "reconcile.outbox", func(ex driver.Executor) (err error) {
			page, err = ex.OutboxUnsentList(ctx, after, r.cfg.PageSize)
			return err
		}); err != nil {
			return err
		}
		for _, row := range page {
			if row.EnqueuedAt.Before(before) {
				r.found(st, Partial, row.ID)
			}
		}
		if len(page) < r.cfg.PageSize {
			return nil
		}
		after = page[len(page)-1].Seq
	}
}

// idSet remembers ids as 64-bit hashes, up to a bound. Two ids sharing a
// hash (odds about n²/2⁶⁵) would hide an unexpected apply, never invent
// one.
type idSet struct {
	seed maphash.Seed
	m    map[uint64]struct{}
	max  int
	full bool // an id was refused: has is no longer exact
}

func newIDSet(max int) idSet {
	return idSet{seed: maphash.MakeSeed(), m: make(map[uint64]struct{}, min(max, 1<<16)), max: max}
}

// add remembers id and reports whether it is new. Past the bound it
// remembers nothing more and reports true.
func (s *idSet) add(id string) bool {
	h := maphash.String(s.seed, id)
	if _, ok := s.m[h]; ok {
		return false
	}
	if len(s.m) >= s.max {
		s.full = true
		return true
	}
	s.m[h] = struct{}{}
	return true
}

func (s *idSet) has(id string) bool {
	_, ok := s.m[maphash.String(s.seed, id)]
	return ok
}

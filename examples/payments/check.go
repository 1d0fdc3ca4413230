package payments

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Consumer names of the scenario's inboxes.
const (
	OrdersConsumer   = "orders"
	PaymentsConsumer = "payments"
)

// BrokerStats are the broker's own counts at the end of a run, when every
// consumer has nothing pending.
type BrokerStats struct {
	// OrdersStored and PaymentsStored are the messages each stream holds:
	// every publish the broker did not drop as a duplicate.
	OrdersStored, PaymentsStored uint64
	// OrdersDelivered and PaymentsDelivered are the deliveries made by the
	// consumers of each stream, redeliveries included.
	OrdersDelivered, PaymentsDelivered uint64
}

// CheckInput is what Check compares the databases with.
type CheckInput struct {
	// Orders are the valid orders the producer emitted (each once, however
	// many times it was published).
	Orders []Order
	// Malformed are the bad inputs it emitted.
	Malformed []BadInput
	// Charges are the provider's records ([Provider.Charges]).
	Charges []ChargeRecord
	Broker  BrokerStats
	// Incomplete says the run stopped before the pipeline drained (a
	// timeout): orders may still be in flight, so only what holds at every
	// moment is checked (nothing applied or charged twice, nothing
	// unexpected, nothing quarantined, every balance equal to its initial
	// one minus its ledger), and the report says it is incomplete.
	Incomplete bool
}

// DeadLetterInfo is one dead letter, for the report.
type DeadLetterInfo struct {
	Consumer string `json:"consumer"`
	ID       string `json:"id"`
	Error    string `json:"error"`
}

// Report is the verdict of a run. Check fills the counts it reads from the
// databases and the broker; the caller fills the run's own facts (kills,
// restarts, publish counts, elapsed time, labels).
type Report struct {
	Orders  int `json:"orders"`  // valid orders emitted
	Applied int `json:"applied"` // orders with a ledger row
	// DuplicatesSuppressed counts copies the broker stored beyond the first
	// (they came after its dedupe window) and the inbox turned into no-ops.
	DuplicatesSuppressed int64 `json:"duplicates_suppressed"`
	// DuplicateEffects counts ledger and payment rows beyond the first per
	// order id. Must be 0.
	DuplicateEffects int64 `json:"duplicate_effects"`
	Missing          int   `json:"missing"` // orders without a ledger row
	Charges          int   `json:"charges"` // orders the provider charged
	// DuplicateCharges counts provider charges beyond the first per order.
	DuplicateCharges int64 `json:"duplicate_charges"`
	MissingCharges   int   `json:"missing_charges"`
	// PartialCommits counts outbox rows committed but never forwarded.
	PartialCommits int64 `json:"partial_commits"`
	// Reprocessed counts redeliveries that were not retries of a failed
	// handler: messages delivered again after a worker was killed before
	// acknowledging them. Retries counts the redeliveries asked for after a
	// handler failure (provider outages).
	Reprocessed  int64 `json:"reprocessed"`
	Retries      int64 `json:"retries"`
	DeadLettered int   `json:"dead_lettered"`
	Malformed    int   `json:"malformed"`
	Quarantined  int   `json:"quarantined"`
	// WrongAmounts counts ledger rows and provider charges whose account or
	// amount is not the order's.
	WrongAmounts int `json:"wrong_amounts"`
	// BalanceMismatches counts accounts whose balance is not the initial one
	// minus what the ledger debited and the provider charged.
	BalanceMismatches int `json:"balance_mismatches"`

	BrokerDuplicates int64 `json:"broker_duplicates"` // publishes the broker dropped by id
	Republished      int64 `json:"republished"`       // copies published after the dedupe window
	ProviderReplays  int64 `json:"provider_replays"`  // provider answers replayed by key
	Kills            int   `json:"kills"`
	Restarts         int   `json:"restarts"`

	// Latency from the order's creation to its ledger commit (P50/P99) and
	// to the provider's charge (ChargeP50/ChargeP99), in milliseconds.
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	ChargeP50ms float64 `json:"charge_p50_ms"`
	ChargeP99ms float64 `json:"charge_p99_ms"`
	// EventsPerS is orders applied per second, from the first order's
	// creation to the last ledger commit.
	EventsPerS float64 `json:"events_per_s"`
	ElapsedS   float64 `json:"elapsed_s"`

	Store   string `json:"store"`
	Broker  string `json:"broker"`
	Workers int    `json:"workers"`
	Seed    uint64 `json:"seed"`
	Chaos   bool   `json:"chaos"`
	// Incomplete: the run stopped before the pipeline drained (see
	// CheckInput.Incomplete); IncompleteReason says why, and OK is false.
	Incomplete       bool   `json:"incomplete,omitempty"`
	IncompleteReason string `json:"incomplete_reason,omitempty"`

	DeadLetters []DeadLetterInfo `json:"dead_letters"`
	OK          bool             `json:"ok"`
	// Failures says, in words, which invariant failed.
	Failures []string `json:"failures,omitempty"`
}

func (r *Report) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

type ledgerRow struct {
	orderID, account  string
	amount            int64
	createdUS, doneUS int64
}

func (s Store) rows(ctx context.Context, q string, scan func(func(...any) error) error) error {
	rows, err := s.DB.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("payments: check: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows.Scan); err != nil {
			return fmt.Errorf("payments: check: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("payments: check: %w", err)
	}
	return nil
}

// Check reads the scenario's tables, eos's tables and the provider's
// records, compares them with what was emitted, and returns the report.
// It trusts no worker's counter: every count is of stored rows or of the
// broker's state.
//
// Invariants (Report.OK): every order applied once (one ledger row, one
// payment record, one dedupe record per consumer), every charge made once,
// no outbox row left unsent, no quarantined message, every account's
// balance equal to its initial balance minus the amounts charged, and every
// malformed input, and nothing else, dead-lettered.
func Check(ctx context.Context, s Store, in CheckInput) (*Report, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	r := &Report{Orders: len(in.Orders), Malformed: len(in.Malformed), DeadLetters: []DeadLetterInfo{}}
	want := make(map[string]Order, len(in.Orders))
	for _, o := range in.Orders {
		want[o.ID] = o
	}

	// Ledger: one row per order.
	var ledger []ledgerRow
	if err := s.rows(ctx, "SELECT order_id, account, amount, created_us, applied_us FROM "+s.table("ledger"), func(scan func(...any) error) error {
		var l ledgerRow
		if err := scan(&l.orderID, &l.account, &l.amount, &l.createdUS, &l.doneUS); err != nil {
			return err
		}
		ledger = append(ledger, l)
		return nil
	}); err != nil {
		return nil, err
	}
	first := make(map[string]ledgerRow, len(ledger))
	ledgerSum := map[string]int64{}
	unexpected := 0
	for _, l := range ledger {
		ledgerSum[l.account] += l.amount
		if _, dup := first[l.orderID]; dup {
			r.DuplicateEffects++
			continue
		}
		first[l.orderID] = l
		o, ok := want[l.orderID]
		switch {
		case !ok:
			unexpected++
		case o.Account != l.account || o.Amount != l.amount:
			r.WrongAmounts++
		}
	}
	if unexpected > 0 {
		r.fail("%d ledger rows for orders never emitted", unexpected)
	}

	// Payment records: one per order.
	// The provider's idempotency turns a second charge request into a
	// replay: only these rows show the payment worker applying twice.
	paid := map[string]bool{}
	unexpectedPaid := 0
	if err := s.rows(ctx, "SELECT order_id FROM "+s.table("payments"), func(scan func(...any) error) error {
		var id string
		if err := scan(&id); err != nil {
			return err
		}
		if paid[id] {
			r.DuplicateEffects++
		} else if _, ok := want[id]; !ok {
			unexpectedPaid++
		}
		paid[id] = true
		return nil
	}); err != nil {
		return nil, err
	}
	if unexpectedPaid > 0 {
		r.fail("%d payment records for orders never emitted", unexpectedPaid)
	}

	// Provider: one charge per order.
	charged := make(map[string]ChargeRecord, len(in.Charges))
	chargedSum := map[string]int64{}
	unexpectedCharges := 0
	for _, c := range in.Charges {
		chargedSum[c.Account] += c.Amount
		if _, dup := charged[c.OrderID]; dup {
			r.DuplicateCharges++
			continue
		}
		charged[c.OrderID] = c
		if o, ok := want[c.OrderID]; !ok {
			unexpectedCharges++
		} else if o.Account != c.Account || o.Amount != c.Amount {
			r.WrongAmounts++
		}
	}

	if unexpectedCharges > 0 {
		r.fail("%d provider charges for orders never emitted", unexpectedCharges)
	}

	var lat, chargeLat []float64
	var minCreated, maxDone int64 = math.MaxInt64, 0
	unrecorded := 0
	for _, o := range in.Orders {
		l, ok := first[o.ID]
		if !ok {
			r.Missing++
		} else {
			r.Applied++
			lat = append(lat, float64(l.doneUS-l.createdUS)/1e3)
			minCreated, maxDone = min(minCreated, l.createdUS), max(maxDone, l.doneUS)
		}
		c, ok := charged[o.ID]
		if !ok {
			r.MissingCharges++
			continue
		}
		r.Charges++
		if !paid[o.ID] {
			unrecorded++
		}
		if l, ok := first[o.ID]; ok {
			chargeLat = append(chargeLat, float64(c.ChargedAt.UnixMicro()-l.createdUS)/1e3)
		}
	}
	if unrecorded > 0 && !in.Incomplete { // in flight: charged, not yet committed
		r.fail("%d charges made at the provider but not recorded by the payment worker", unrecorded)
	}
	r.P50ms, r.P99ms = Percentile(lat, 0.50), Percentile(lat, 0.99)
	r.ChargeP50ms, r.ChargeP99ms = Percentile(chargeLat, 0.50), Percentile(chargeLat, 0.99)
	if r.Applied > 0 && maxDone > minCreated {
		r.EventsPerS = math.Round(float64(r.Applied)/(float64(maxDone-minCreated)/1e6)*10) / 10
	}

	// Balances: initial minus what the ledger debited, and minus what the
	// provider charged.
	if err := s.rows(ctx, "SELECT id, balance, initial FROM "+s.table("accounts"), func(scan func(...any) error) error {
		var id string
		var balance, initial int64
		if err := scan(&id, &balance, &initial); err != nil {
			return err
		}
		// The debit and the ledger row commit together; the charge
		// follows, so it matches only once the pipeline drained.
		if initial-balance != ledgerSum[id] || (!in.Incomplete && initial-balance != chargedSum[id]) {
			r.BalanceMismatches++
		}
		return nil
	}); err != nil {
		return nil, err
	}

	// eos's own tables: the outbox, dead letters, quarantine, failures.
	if err := s.DB.QueryRowContext(ctx, "SELECT count(*) FROM "+s.table(EOSPrefix+"outbox")+" WHERE sent_at IS NULL").Scan(&r.PartialCommits); err != nil {
		return nil, fmt.Errorf("payments: check: %w", err)
	}
	if err := s.DB.QueryRowContext(ctx, "SELECT count(*) FROM "+s.table(EOSPrefix+"inbox_quarantine")).Scan(&r.Quarantined); err != nil {
		return nil, fmt.Errorf("payments: check: %w", err)
	}
	dead := map[string]DeadLetterInfo{}
	deadPayload := map[string][]byte{}
	if err := s.rows(ctx, "SELECT consumer, id, payload, last_error FROM "+s.table(EOSPrefix+"dead_letters")+" ORDER BY consumer, id", func(scan func(...any) error) error {
		var d DeadLetterInfo
		var payload []byte
		if err := scan(&d.Consumer, &d.ID, &payload, &d.Error); err != nil {
			return err
		}
		r.DeadLetters = append(r.DeadLetters, d)
		dead[d.Consumer+"\x00"+d.ID] = d
		deadPayload[d.Consumer+"\x00"+d.ID] = payload
		return nil
	}); err != nil {
		return nil, err
	}
	r.DeadLettered = len(r.DeadLetters)
	matched := map[string]bool{}
	for _, b := range in.Malformed {
		found := false
		if b.NoMessageID {
			// Dead-lettered as invalid, once per stream message: a resend
			// without an id the broker could not drop is stored twice, and
			// each copy gets its own record (named by its stream position).
			for k, p := range deadPayload {
				if strings.HasPrefix(k, OrdersConsumer+"\x00invalid-") && bytes.Equal(p, b.Message.Payload) {
					matched[k], found = true, true
				}
			}
		} else if _, ok := dead[OrdersConsumer+"\x00"+b.Message.ID]; ok {
			matched[OrdersConsumer+"\x00"+b.Message.ID], found = true, true
		}
		if !found && !in.Incomplete {
			r.fail("malformed input (%s) was not dead-lettered", b.Why)
		}
	}
	for k, d := range dead {
		if !matched[k] {
			r.fail("unexpected dead letter %s/%s: %s", d.Consumer, d.ID, d.Error)
		}
	}
	// The dedupe records: one claim per distinct message, dead letters
	// included (their ids stay claimed).
	claims := map[string]int64{}
	if err := s.rows(ctx, "SELECT consumer, count(*) FROM "+s.table(EOSPrefix+"inbox")+" GROUP BY consumer", func(scan func(...any) error) error {
		var consumer string
		var n int64
		if err := scan(&consumer, &n); err != nil {
			return err
		}
		claims[consumer] = n
		return nil
	}); err != nil {
		return nil, err
	}
	// In flight, fewer claims are expected; more are wrong at any moment.
	if got, want := claims[OrdersConsumer], int64(len(in.Orders)+len(in.Malformed)); got > want || (got != want && !in.Incomplete) {
		r.fail("%d dedupe records for consumer %q, want %d (orders and malformed inputs)", got, OrdersConsumer, want)
	}
	if got, want := claims[PaymentsConsumer], int64(len(in.Orders)); got > want || (got != want && !in.Incomplete) {
		r.fail("%d dedupe records for consumer %q, want %d (one per charge)", got, PaymentsConsumer, want)
	}

	var failed struct{ attempts, deadRows int64 }
	if err := s.rows(ctx, "SELECT consumer, id, attempts FROM "+s.table(EOSPrefix+"inbox_failures"), func(scan func(...any) error) error {
		var consumer, id string
		var n int64
		if err := scan(&consumer, &id, &n); err != nil {
			return err
		}
		failed.attempts += n
		if _, ok := dead[consumer+"\x00"+id]; ok {
			failed.deadRows++ // its last failure was dead-lettered, not retried
		}
		return nil
	}); err != nil {
		return nil, err
	}
	r.Retries = failed.attempts - failed.deadRows

	// The broker: stored copies beyond the distinct messages passed its
	// dedupe; deliveries beyond the stored messages and the retries are
	// redeliveries after a kill.
	distinctOrders := uint64(len(in.Orders) + len(in.Malformed))
	distinctCharges := uint64(len(in.Orders))
	r.DuplicatesSuppressed = sub(in.Broker.OrdersStored, distinctOrders) + sub(in.Broker.PaymentsStored, distinctCharges)
	redelivered := sub(in.Broker.OrdersDelivered, in.Broker.OrdersStored) + sub(in.Broker.PaymentsDelivered, in.Broker.PaymentsStored)
	r.Reprocessed = max(redelivered-r.Retries, 0)

	if r.DuplicateEffects > 0 {
		r.fail("%d duplicate effects (ledger or payment rows beyond the first per order)", r.DuplicateEffects)
	}
	if r.Missing > 0 && !in.Incomplete {
		r.fail("%d orders not applied", r.Missing)
	}
	if r.DuplicateCharges > 0 {
		r.fail("%d duplicate charges at the provider", r.DuplicateCharges)
	}
	if r.MissingCharges > 0 && !in.Incomplete {
		r.fail("%d orders not charged", r.MissingCharges)
	}
	if r.PartialCommits > 0 && !in.Incomplete {
		r.fail("%d outbox rows committed but not forwarded", r.PartialCommits)
	}
	if r.Quarantined > 0 {
		r.fail("%d messages quarantined (same id, different payload)", r.Quarantined)
	}
	if r.WrongAmounts > 0 {
		r.fail("%d ledger rows or charges with the wrong account or amount", r.WrongAmounts)
	}
	if r.BalanceMismatches > 0 {
		r.fail("%d accounts whose balance is not initial minus charged", r.BalanceMismatches)
	}
	r.Incomplete = in.Incomplete
	r.OK = len(r.Failures) == 0 && !in.Incomplete
	return r, nil
}

func sub(a, b uint64) int64 {
	if a < b {
		return 0
	}
	return int64(a - b)
}

// Percentile returns the q-quantile of v (nearest rank), rounded to 0.1;
// it sorts v.
func Percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return math.Round(v[min(max(i, 0), len(v)-1)]*10) / 10
}

// Table renders the report for people.
func (r *Report) Table() string {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	verdict := "OK"
	switch {
	case len(r.Failures) > 0:
		verdict = "FAILED"
	case r.Incomplete:
		verdict = "INCOMPLETE"
	case !r.OK:
		verdict = "FAILED"
	}
	// The cause comes first: the counts of an undrained run are not
	// verdicts.
	drained := "must be 0"
	if r.Incomplete {
		fmt.Fprintf(&b, "INCOMPLETE: %s; the checks that need a drained pipeline (missing, charges, outbox, dead letters) were skipped\n",
			cmp.Or(r.IncompleteReason, "the run stopped before the pipeline drained"))
		drained = "not checked: incomplete"
	}
	row := func(name string, v any, note string) { fmt.Fprintf(w, "  %s\t%v\t%s\n", name, v, note) }
	fmt.Fprintf(w, "eos demo: payments, %d orders, %s + %s, %d workers, chaos %v, seed %d\n", r.Orders, r.Store, r.Broker, r.Workers, r.Chaos, r.Seed)
	row("applied", r.Applied, "orders with a ledger row")
	row("missing", r.Missing, drained)
	row("duplicate effects", r.DuplicateEffects, "must be 0")
	row("charges", r.Charges, "orders charged at the provider")
	row("missing charges", r.MissingCharges, drained)
	row("duplicate charges", r.DuplicateCharges, "must be 0")
	row("partial commits", r.PartialCommits, "outbox rows never forwarded; "+drained)
	row("balance mismatches", r.BalanceMismatches, "must be 0")
	row("wrong amounts", r.WrongAmounts, "must be 0")
	row("quarantined", r.Quarantined, "must be 0")
	row("dead-lettered", r.DeadLettered, fmt.Sprintf("malformed inputs emitted: %d", r.Malformed))
	row("broker duplicates", r.BrokerDuplicates, "publish retries dropped by the broker's dedupe")
	row("republished", r.Republished, "copies published after the broker's dedupe window")
	row("duplicates suppressed", r.DuplicatesSuppressed, "copies the inbox turned into no-ops")
	row("reprocessed", r.Reprocessed, "redeliveries after a kill")
	row("retries", r.Retries, "redeliveries after a handler failure")
	row("provider replays", r.ProviderReplays, "charges answered from the idempotency record")
	row("kills", r.Kills, fmt.Sprintf("workers SIGKILLed (%d restarts)", r.Restarts))
	row("latency p50 / p99", fmt.Sprintf("%.1f / %.1f ms", r.P50ms, r.P99ms), "order created → ledger commit")
	row("charge p50 / p99", fmt.Sprintf("%.1f / %.1f ms", r.ChargeP50ms, r.ChargeP99ms), "order created → provider charge")
	row("throughput", fmt.Sprintf("%.0f orders/s", r.EventsPerS), fmt.Sprintf("run took %s", time.Duration(r.ElapsedS*float64(time.Second)).Round(100*time.Millisecond)))
	w.Flush()
	for _, d := range r.DeadLetters {
		fmt.Fprintf(&b, "  dead letter %s/%s: %s\n", d.Consumer, d.ID, d.Error)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  FAILED: %s\n", f)
	}
	fmt.Fprintf(&b, "verdict: %s\n", verdict)
	return b.String()
}

package check

import (
	"time"

	"github.com/eoskit/eos/examples/payments"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/torture/intents"
)

// Facts are everything the checker reads after a run.
type Facts struct {
	// Intents is the producer's intent log.
	Intents []intents.Intent
	// Stored counts the ORDERS stream's messages by message id ("" for
	// those without one).
	Stored map[string]int
	Broker BrokerStats
	Store  StoreFacts
	// Charges are the provider's records.
	Charges []payments.ChargeRecord
	// KillTimes are the times of the workers' kills and crashes, sorted.
	KillTimes []time.Time
	// Incomplete says the run timed out before the pipeline drained
	// (finished, or idle: nothing pending at any consumer and nothing
	// moving). Only in a drained pipeline is an order not applied lost, an
	// unsent outbox row a partial commit, or a charge missing.
	Incomplete bool
}

// BrokerStats are the broker's counts at the end of a run.
type BrokerStats struct {
	// OrdersStored and PaymentsStored are the messages each stream holds:
	// every publish the broker did not drop as a duplicate.
	OrdersStored, PaymentsStored uint64
	// OrdersDelivered and PaymentsDelivered are the deliveries made by the
	// consumers of each stream, redeliveries included. Kafka does not
	// count deliveries: 0 on a run on Kafka, and the report's Reprocessed
	// with them.
	OrdersDelivered, PaymentsDelivered uint64
}

// StoreFacts are what the database holds: the scenario's rows and eos's
// state, by inbox consumer.
type StoreFacts struct {
	Ledger []payments.LedgerRow
	// PaymentRows counts the payment worker's rows per order.
	PaymentRows map[string]int
	Balances    []payments.Balance
	// Unsent outbox rows.
	Unsent int64
	Inbox  map[string]InboxFacts
}

// InboxFacts are one inbox consumer's counts and dead letters.
type InboxFacts struct {
	inbox.Stats
	DeadLetters []inbox.DeadLetter
}

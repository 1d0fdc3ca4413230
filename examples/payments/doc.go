// Package payments is eos's end-to-end scenario: orders debit accounts
// exactly once, and every order is charged exactly once at an external
// payment provider, however often anything is retried, redelivered or
// killed on the way.
//
// The pipeline:
//
//	producer ──ORDERS──▶ order workers (inbox "orders")
//	                       tx{claim, debit account, ledger row, outbox charge}
//	relay ◀──outbox──┘
//	  └──PAYMENTS──▶ payment worker (inbox "payments")
//	                       tx{claim, POST /v1/charges (Idempotency-Key), payments row}
//	                                   │
//	                                   ▼
//	                    provider simulator (own idempotency records)
//
// The package holds the parts of the scenario; eos demo and eos torture
// (torture/scenario) wire them to processes, a broker and a database, and
// torture/check judges a run:
//
//   - [Order] and [Charge], their JSON form and validation ([ParseOrder],
//     [ParseCharge]), the workload ([GenerateOrders]) and the malformed
//     inputs mixed into it ([Malformed]);
//   - [Store]: the scenario's tables (accounts, ledger, payments) next to
//     eos's, on SQLite or PostgreSQL through database/sql, and the reads a
//     checker makes of them ([Store.Ledger], [Store.PaymentRows],
//     [Store.Balances]);
//   - [OrderHandler] and [PaymentHandler], inbox handlers on *sql.Tx, and
//     [OrderBatchHandler], the order handler set-based (an
//     inbox.BatchHandler: a few statements per batch, the same effects);
//   - [Provider], the payment-provider simulator (an http.Handler over its
//     own SQLite file) with its charge records ([Provider.Charges]), and
//     [ProviderClient].
//
// # The external effect
//
// An inbox handler must not have effects outside its transaction, because a
// batch may run it again after a rollback. The payment handler calls the
// provider anyway, and that is safe for one reason: the call carries the
// order id as its Idempotency-Key, so the provider turns every repetition
// (a redone batch, a redelivery after a crash between the call and the
// commit) into a replay of the first answer. The provider's idempotency
// record is the dedupe record of the external side.
package payments

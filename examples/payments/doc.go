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
//	  └──PAYMENTS──▶ payment worker: stage, before the transaction:
//	                   callonce: claim charge id, POST /v1/charges
//	                   (Idempotency-Key: the charge id), record the answer
//	                                   │          │
//	                                   │          ▼
//	                                   │   provider simulator (httpidem, own SQLite file)
//	                                   ▼
//	                 inbox "payments" tx{claim, payments row (the recorded answer)}
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
//   - [Provider], the payment-provider simulator (an http.Handler on the
//     Idempotency-Key middleware, httpidem, over its own SQLite file) with
//     its charge records ([Provider.Charges]), and [ProviderClient].
//
// # The external effect
//
// An inbox handler must not have effects outside its transaction, because a
// batch may run it again after a rollback. So the payment worker does not
// call the provider in its handler: [PaymentHandler.Source] wraps the
// inbox's source with a callonce.Stage, which makes each charge's call
// before the batch's transaction, through a callonce.Caller: the charge's
// message id is claimed in a dedupe store (one caller at a time), sent as
// the Idempotency-Key, retried with the same key while the answer is
// unknown (a timeout, a 5xx), and the provider's answer is recorded. The
// handler then writes the recorded answer in the inbox's transaction. A
// redelivery, or a redone batch, finds the answer recorded and makes no
// call; a worker that dies between the call and the record leaves a claim
// that expires, and the next owner calls with the same key, which the
// provider replays.
package payments

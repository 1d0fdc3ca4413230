// Package callonce makes a call to an external API (a payment provider, an
// email service) once per message, from a consumer, although the call
// cannot join the inbox's database transaction.
//
// A Caller claims the call's key in a dedupe.Store before calling, so two
// workers never call for one key at once (the second gets ErrInProgress),
// keeps the claim's lease renewed while the call runs, and records the
// call's definitive answer with Complete: every later Do for the key, a
// redelivery or a retried batch, gets the recorded answer without calling.
//
// The claim alone cannot make the call happen once: a worker can die after
// the request left and before the answer was recorded, and a paused worker
// can outlive its lease. What closes that gap is the idempotency key, which
// never changes for a key: every call is handed the same key (send it as the
// request's Idempotency-Key, see SetHeader), so the external service turns
// every repetition into a replay of its first answer. The claim keeps the
// repetitions rare and one at a time; the key makes them harmless.
//
// The call classifies its own answer, because only it knows the API:
//
//   - Done(value): executed; value is recorded and handed on;
//   - Failed(value, reason): a definitive refusal (a 4xx, a declined card);
//     recorded too, and never retried;
//   - Unknown(err): no answer that says what happened (a timeout, a reset
//     connection, a 5xx): the request may have been executed. Do retries it
//     with bounded backoff and the same idempotency key, then gives up with
//     an *UnknownOutcomeError (ErrUnknownOutcome), releasing the key so that
//     the next attempt, with the same idempotency key again, may claim it.
//
// # With an inbox
//
// The call runs outside the inbox's transaction, before it; the handler
// records the result (and enqueues the next step in the outbox) in the
// transaction:
//
//	message ──▶ Stage: Caller.Do(key = message id)  (no transaction open)
//	        ──▶ inbox tx{claim, handler: Stage.Result(m) → rows, outbox}
//
// A Stage wraps the inbox's Source: it runs the calls of each fetched batch
// and keeps their results for the handler until the deliveries are settled.
// A redelivery, or a batch the inbox redoes, finds the result recorded and
// does not call again; a failed Do is handed to the handler as an error,
// so the inbox's retry and dead-letter policy applies to it.
//
// Over a BatchStore (Batched makes one of the SQL store), a Stage claims
// a batch's keys in one transaction and records their answers in another,
// rather than two transactions per call.
//
// # Observing
//
// Config.Hooks are told how each Do ended (an Ending: called, replayed,
// unknown, lease_lost, …) and of each failure of the store, so that an
// operator sees a provider in trouble or a store failing without reading
// logs; metrics.CallOnceHook turns them into Prometheus series.
package callonce

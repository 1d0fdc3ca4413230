// Package provider is a payment-provider simulator built on httpidem: POST
// /v1/charges with a JSON {"order_id","account","amount"} body and an
// Idempotency-Key (required) executes a charge once and answers 201 with
// its id; every retry with the key gets that answer again, byte for byte.
// GET /v1/charges lists the charges executed, so that anyone can see with
// curl that a retried request charged once. It is what `eos provider`
// serves.
//
// Over a SQL store (NewTx) the charge row and the key's stored response
// commit in one transaction; over another store (New, e.g. Redis) the
// charges are kept in memory, for trying the semantics.
//
// Keys are scoped by the caller's credentials (a hash of the
// Authorization header; "anonymous" without one), so two clients using
// the same key do not see each other's charges.
package provider

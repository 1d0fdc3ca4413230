// Package inboxtest helps test code that uses the inbox, without a broker.
//
// [Source] is an in-memory [inbox.Source]: messages given to
// [Source.Deliver] are handed to [inbox.Processor.Run] in order, each
// [Delivery] records how the processor settled it, and a nacked delivery
// comes back at the end of the queue (the nack's delay is recorded, not
// waited for, so tests stay fast and deterministic). [Process] runs one
// batch and returns its outcomes with the deliveries, for the common
// "given these messages, what happened" test.
//
// Everything here runs against the real processor and a real database: only
// the transport is replaced. What a transport itself must guarantee (publish
// dedupe, redelivery after a missing ack) is the job of transport/transporttest.
package inboxtest

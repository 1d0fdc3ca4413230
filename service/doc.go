// Package service runs an application's eos parts as one: inbox processors
// (each with as many runners as its Concurrency, one source per runner), the
// outbox relay and the compactor, with one Start, one graceful Stop and one
// health state for readiness probes.
//
// A [Service] is built from [Inbox] values ([NewInbox] makes the processor,
// with the service's health hook in its Hooks; [NewBatchInbox] the same for
// a set-based inbox.BatchHandler) and [Runner]s (anything that runs until
// its context ends: *outbox.Relay, *compact.Compactor). Then:
//
//   - [Service.Start] opens one source per runner and starts everything;
//   - [Service.Stop] stops fetching, lets the batches in flight commit and
//     settle, closes the sources (a natsjs.Subscriber then hands back what it
//     pulled ahead, at once, to the other subscribers of its consumer), and
//     only then stops the runners; when Stop's context ends first, the
//     batches still in flight are cancelled: they roll back and nothing of
//     them is acknowledged, so the broker redelivers them;
//   - [Service.Run] is Start, a wait for its context, a failure or a Stop,
//     and Stop within Config.StopTimeout: all a main function needs;
//   - [Service.Pause] and [Service.Resume] stop and restart fetching without
//     closing anything;
//   - [Service.Health] reports Running, Stalled (an inbox's store is failing:
//     it retries with backoff and acknowledges nothing, see inbox.Processor.Run),
//     Paused, Stopping, Stopped or Failed, with the last error.
//
// A readiness probe serves Health:
//
//	http.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
//		if h := svc.Health(); !h.Ready() {
//			http.Error(w, fmt.Sprintf("%s: %v", h.State, h.Err), http.StatusServiceUnavailable)
//		}
//	})
//
// A part that fails (a source that breaks, a runner that returns) fails the
// Service: the others are stopped as by Stop, Health reports Failed, and the
// process is expected to exit and be restarted by its supervisor. There is no
// silent restart inside.
package service

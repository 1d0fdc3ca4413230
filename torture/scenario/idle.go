package scenario

import "slices"

// pipelineState is one observation of the whole pipeline: the databases'
// counts, the provider's, and every consumer's position on its stream.
type pipelineState struct {
	applied, paid, unsent, deadLettered, charged int64
	consumers                                    []consumerState
}

// consumerState is a durable consumer's position.
type consumerState struct {
	pending    uint64 // messages not yet delivered
	ackPending int    // delivered, not yet acknowledged (nacked ones included)
	delivered  uint64 // last stream sequence delivered
	ackFloor   uint64 // stream sequence up to which everything is acknowledged
}

// quiet reports that nothing waits anywhere: no consumer has a message to
// deliver or one out for acknowledgement, and the outbox has nothing to
// forward. A worker that holds a message, a batch being retried, a nacked
// message waiting for its redelivery and a row the relay has not marked
// all show here.
func (s pipelineState) quiet() bool {
	if s.unsent != 0 {
		return false
	}
	for _, c := range s.consumers {
		if c.pending != 0 || c.ackPending != 0 {
			return false
		}
	}
	return true
}

func (s pipelineState) equal(o pipelineState) bool {
	return s.applied == o.applied && s.paid == o.paid && s.unsent == o.unsent && s.deadLettered == o.deadLettered &&
		s.charged == o.charged && slices.Equal(s.consumers, o.consumers)
}

// idleObservations is how many observations in a row must find the
// pipeline quiet and unchanged before it counts as idle: one quiet
// observation can fall between a relay's publish and its mark, or
// between two consumers' reads.
const idleObservations = 3

// idleDetector says when a pipeline whose producer is done has gone idle:
// quiet and unchanged over idleObservations observations in a row. An
// idle pipeline that is not complete has lost something; the run ends
// and is checked then, not at its timeout.
type idleDetector struct {
	last pipelineState
	same int // observations in a row, quiet and equal to last
}

// observe records s and reports whether the pipeline is idle.
func (d *idleDetector) observe(s pipelineState) bool {
	switch {
	case !s.quiet():
		d.same = 0
	case d.same > 0 && s.equal(d.last):
		d.same++
	default:
		d.same = 1
	}
	d.last = s
	return d.same >= idleObservations
}

// reset forgets what was observed (the producer is still publishing, or
// an observation failed).
func (d *idleDetector) reset() { d.same = 0 }

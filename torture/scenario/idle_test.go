package scenario

import "testing"

func TestIdleDetector(t *testing.T) {
	quiet := pipelineState{applied: 5, paid: 5, charged: 5, consumers: []consumerState{{delivered: 7, ackFloor: 7}, {delivered: 5, ackFloor: 5}}}
	busy := quiet
	busy.consumers = []consumerState{{delivered: 7, ackFloor: 6, ackPending: 1}, {delivered: 5, ackFloor: 5}}
	unsent := quiet
	unsent.unsent = 1
	moved := quiet
	moved.consumers = []consumerState{{delivered: 8, ackFloor: 8}, {delivered: 5, ackFloor: 5}}
	for _, c := range []struct {
		name string
		seq  []pipelineState
		want []bool
	}{
		{"quiet and still", []pipelineState{quiet, quiet, quiet, quiet}, []bool{false, false, true, true}},
		{"a message out", []pipelineState{quiet, busy, quiet, quiet}, []bool{false, false, false, false}},
		{"outbox not empty", []pipelineState{unsent, unsent, unsent, unsent}, []bool{false, false, false, false}},
		{"moving", []pipelineState{quiet, moved, quiet, moved}, []bool{false, false, false, false}},
		{"moved then still", []pipelineState{quiet, moved, moved, moved}, []bool{false, false, false, true}},
	} {
		var d idleDetector
		for i, s := range c.seq {
			if got := d.observe(s); got != c.want[i] {
				t.Errorf("%s: observation %d: idle %v, want %v", c.name, i, got, c.want[i])
			}
		}
	}
	var d idleDetector
	d.observe(quiet)
	d.observe(quiet)
	d.reset()
	if d.observe(quiet) {
		t.Error("idle right after reset")
	}
}

// Package supervisor runs worker processes for the torture harness and the
// demo: it starts each child, restarts it when it dies, kills one at random
// when asked (a chaos kill), gives up on a child that keeps failing on its
// own, and stops them all with a grace period.
//
// Children tell the supervisor what happened to them over an events pipe,
// not through their logs: a child writes one word per event (see
// [Emitter]) on a descriptor the supervisor hands it, and the supervisor
// counts the words; an event may carry a value (name=value, such as where
// the child serves something), passed to Config.OnEvent with the child's
// start number. The pipe outlives a SIGKILL of the child: what was
// written before the kill is still read, and Config.OnEnd says when a
// process is gone with every event it sent read.
package supervisor

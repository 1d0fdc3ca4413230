// Package failpoint provides named fault-injection points. Code under test
// calls [Set.Eval] at a named point; a test or the torture harness arms the
// point with an [Action] (return an error, crash the process, delay).
//
// A nil *Set is valid and inert: Eval on it returns nil after one pointer
// check, so production code pays nothing for the points it carries. There is
// no global registry: each Processor or Relay is handed its own Set.
//
// [Parse] builds a Set from a spec string such as
// "inbox.after_claim=crash@0.01,inbox.before_commit=error@0.05", which is
// how eos torture arms the points of its worker processes.
package failpoint

package main

import (
	"cmp"
	"fmt"
	"io"
	"strings"

	"github.com/eoskit/eos/internal/redact"
	"github.com/eoskit/eos/torture/check"
)

// reportWidth bounds the lines of a report.
const reportWidth = 100

// row is one line of a report: a label, a run's value and, for a report of
// one run, a note saying what the value means.
type row struct {
	label string
	value func(r check.Run) string
	note  string
	// perRun: the value has no total (a seed, a rate).
	perRun bool
}

// num formats a count.
func num[T int | int64](v T) string { return fmt.Sprint(v) }

// rows are the lines of a report; drained is the note of what is checked
// only once the pipeline drained.
func rows(drained string) []row {
	ms := func(v float64) string { return fmt.Sprintf("%.1f", v) }
	return []row{
		{label: "seed", value: func(r check.Run) string { return fmt.Sprint(r.Seed) }, perRun: true},
		{"attempted", func(r check.Run) string { return num(r.Attempted) }, "orders the intent log announced", false},
		{"acknowledged", func(r check.Run) string { return num(r.Acknowledged) }, "of those, stored by the broker", false},
		{"applied", func(r check.Run) string { return num(r.Applied) }, "of those, with a ledger row", false},
		{"lost", func(r check.Run) string { return num(r.Lost) }, drained, false},
		{"duplicated", func(r check.Run) string { return num(r.Duplicated) }, "ledger or payment rows beyond the first; must be 0", false},
		{"unexpected", func(r check.Run) string { return num(r.Unexpected) }, "applied, never intended; must be 0", false},
		{"wrong amounts", func(r check.Run) string { return num(r.WrongAmounts) }, "must be 0", false},
		{"indeterminate", func(r check.Run) string { return num(r.Indeterminate) }, "publishes without a PubAck, sent again", false},
		{"recovered", func(r check.Run) string { return num(r.Recovered) }, "of those, applied", false},
		{"in flight at fault", func(r check.Run) string { return num(r.InFlightAtFault) }, "created before, applied after a kill or crash", false},
		{"charged once", func(r check.Run) string { return num(r.ChargedOnce) }, "one provider charge and one payment row", false},
		{"charge anomalies", func(r check.Run) string { return num(r.ChargeAnomalies) }, "must be 0", false},
		{"conserved", func(r check.Run) string { return fmt.Sprint(r.Conservation) }, "balances = initial - ledger", false},
		{"balance mismatches", func(r check.Run) string { return num(r.BalanceMismatches) }, "accounts; must be 0", false},
		{"partial commits", func(r check.Run) string { return num(r.PartialCommits) }, "outbox rows never forwarded; " + drained, false},
		{"quarantined", func(r check.Run) string { return num(r.Quarantined) }, "must be 0", false},
		{"poison", func(r check.Run) string { return num(r.Poison) }, "malformed inputs sent", false},
		{"dead-lettered", func(r check.Run) string { return num(r.DeadLettered) }, "inputs dead-lettered", false},
		{"dups suppressed", func(r check.Run) string { return num(r.DuplicatesSuppressed) }, "copies the inbox turned into no-ops", false},
		{"retries", func(r check.Run) string { return num(r.Retries) }, "redeliveries after a handler failure", false},
		{"reprocessed", func(r check.Run) string { return num(r.Reprocessed) }, "redeliveries after a kill", false},
		{"store errors", func(r check.Run) string { return num(r.DedupeStoreErrors) }, "inbox store failures (stalls)", false},
		{"p50 ms", func(r check.Run) string { return ms(r.P50ms) }, "order created -> ledger commit", false},
		{"p99 ms", func(r check.Run) string { return ms(r.P99ms) }, "", false},
		{"charge p50 ms", func(r check.Run) string { return ms(r.ChargeP50ms) }, "order created -> provider charge", false},
		{"charge p99 ms", func(r check.Run) string { return ms(r.ChargeP99ms) }, "", false},
		{label: "orders/s", value: func(r check.Run) string { return fmt.Sprintf("%.0f", r.EventsPerS) }, note: "first order created -> last applied", perRun: true},
		{"kills", func(r check.Run) string { return num(r.Kills) }, "workers SIGKILLed", false},
		{"failpoint crashes", func(r check.Run) string { return num(r.FailpointCrashes) }, "workers crashed at a failpoint", false},
		{"worker restarts", func(r check.Run) string { return num(r.WorkerRestarts) }, "", false},
		{"broker restarts", func(r check.Run) string { return num(r.BrokerRestarts) }, "", false},
		{"broker duplicates", func(r check.Run) string { return num(r.BrokerDuplicates) }, "publish retries the broker dropped", false},
		{"republished", func(r check.Run) string { return num(r.Republished) }, "copies sent past the dedupe window", false},
		{"provider replays", func(r check.Run) string { return num(r.ProviderReplays) }, "charges answered from the idempotency record", false},
		{"proxy faults", func(r check.Run) string { return num(r.ProxyFaults) }, "resets, latency, blackholes", false},
		{"elapsed s", func(r check.Run) string { return fmt.Sprintf("%.1f", r.ElapsedS) }, "", false},
		{"ok", func(r check.Run) string { return fmt.Sprint(r.OK) }, "", false},
	}
}

// printRun writes the report of one run: label, value and note per line.
func printRun(w io.Writer, r check.Run) {
	drained := "must be 0"
	if r.Incomplete {
		drained = "not checked: incomplete"
	}
	rs := rows(drained)
	labelW, valueW := 0, 0
	for _, rw := range rs {
		labelW, valueW = max(labelW, len(rw.label)), max(valueW, len(rw.value(r)))
	}
	for _, rw := range rs {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-*s  %*s  %s", labelW, rw.label, valueW, rw.value(r), rw.note), " "))
	}
}

// printRuns writes a table of runs, a column per run and one for total,
// in blocks of as many columns as fit reportWidth.
func printRuns(w io.Writer, runs []check.Run, total check.Run) {
	rs := rows("")
	labelW := 0
	for _, rw := range rs {
		labelW = max(labelW, len(rw.label))
	}
	type column struct {
		head  string
		run   check.Run
		total bool
	}
	cols := make([]column, 0, len(runs)+1)
	for _, r := range runs {
		cols = append(cols, column{head: fmt.Sprintf("run %d", r.Run), run: r})
	}
	cols = append(cols, column{head: "total", run: total, total: true})
	cell := func(c column, rw row) string {
		if c.total && rw.perRun {
			return ""
		}
		return rw.value(c.run)
	}
	colW := 0
	for _, c := range cols {
		colW = max(colW, len(c.head))
		for _, rw := range rs {
			colW = max(colW, len(cell(c, rw)))
		}
	}
	colW += 2
	perBlock := max(1, (reportWidth-2-labelW)/colW)
	for start := 0; start < len(cols); start += perBlock {
		block := cols[start:min(start+perBlock, len(cols))]
		if start > 0 {
			fmt.Fprintln(w)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "  %-*s", labelW, "")
		for _, c := range block {
			fmt.Fprintf(&b, "%*s", colW, c.head)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		for _, rw := range rs {
			b.Reset()
			fmt.Fprintf(&b, "  %-*s", labelW, rw.label)
			for _, c := range block {
				fmt.Fprintf(&b, "%*s", colW, cell(c, rw))
			}
			fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		}
	}
}

// printWrapped writes text in lines of at most reportWidth columns, the
// first starting with first and the others indented as deep.
func printWrapped(w io.Writer, first, text string) {
	for _, line := range wrap(text, first, strings.Repeat(" ", len(first)), reportWidth) {
		fmt.Fprintln(w, line)
	}
}

// wrap breaks text into lines of at most width columns at spaces, and
// after commas inside a word too long for a line (a failpoint spec); the
// first line starts with first, the others with indent.
func wrap(text, first, indent string, width int) []string {
	type word struct {
		text  string
		glued bool // the rest of a word cut after a comma: no space before it
	}
	var words []word
	for _, w := range strings.Fields(text) {
		glued := false
		for len(indent)+len(w) > width {
			i := strings.LastIndex(w[:width-len(indent)], ",")
			if i < 0 {
				break
			}
			words = append(words, word{w[:i+1], glued})
			w, glued = w[i+1:], true
		}
		words = append(words, word{w, glued})
	}
	var lines []string
	line := first
	for i, w := range words {
		sep := " "
		if i == 0 || w.glued {
			sep = ""
		}
		if i > 0 && len(line)+len(sep)+len(w.text) > width {
			lines, line, sep = append(lines, line), indent, ""
		}
		line += sep + w.text
	}
	return append(lines, line)
}

// verdict is the last line's word: a failed check wins over an incomplete
// run, which is not a verdict either way.
func verdict(ok, failed, incomplete bool) string {
	switch {
	case failed || (!ok && !incomplete):
		return "FAILED"
	case incomplete:
		return "INCOMPLETE"
	}
	return "OK"
}

// reportCode is the exit code of a checked run.
func reportCode(ok, failed, incomplete bool) int {
	switch verdict(ok, failed, incomplete) {
	case "FAILED":
		return exitFailed
	case "INCOMPLETE":
		return exitIncomplete
	}
	return exitOK
}

// incompleteText is what an incomplete run's report says first.
func incompleteText(reason string) string {
	return cmp.Or(reason, "the run stopped before the pipeline drained") +
		"; the checks that need a drained pipeline (lost, charges, outbox, dead letters) were skipped"
}

// oneLine keeps an error message on one line and masks the secrets of any
// connection string it quotes (a driver's error may echo one).
func oneLine(err error) string {
	return redact.Text(strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " "))
}

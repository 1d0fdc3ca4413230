package reconcile

import "time"

// Kind names what a finding is about.
type Kind string

// The kinds of findings.
const (
	Missed     Kind = "missed"     // in the source, never applied (M2)
	Unexpected Kind = "unexpected" // applied, not in the source
	Duplicate  Kind = "duplicate"  // an effect applied more than once
	Partial    Kind = "partial"    // an outbox row committed, unsent past the threshold (M3)
)

// Found is one kind of finding of a run: how many, and the first ids.
type Found struct {
	Count int64 `json:"count"`
	// Sample holds the first Config.SampleSize ids found, in the order
	// they were found.
	Sample []string `json:"sample,omitempty"`
}

func (f *Found) add(id string, sample int) {
	f.Count++
	if len(f.Sample) < sample {
		f.Sample = append(f.Sample, id)
	}
}

// Report is what one run found. The zero counts of a finding kind that was
// not checked (no Duplicates query, PartialAfter zero, unexpected skipped)
// say nothing: the *Checked fields tell.
type Report struct {
	Consumer   string    `json:"consumer"`
	Source     string    `json:"source"`
	Outbox     string    `json:"outbox,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`

	// SourceEntries is the number of entries the source yielded with an
	// id (a republished id counts each time), Applied those whose id the
	// consumer claimed.
	SourceEntries int64 `json:"source_entries"`
	Applied       int64 `json:"applied"`
	// SourceWithoutID counts source entries without an id: the inbox
	// dead-letters such a message as invalid, under an id of its own.
	SourceWithoutID int64 `json:"source_without_id,omitempty"`
	// Uncheckable counts unclaimed source ids older than the compaction
	// horizon (Config.Retention): their claim may have been compacted.
	Uncheckable int64 `json:"uncheckable"`
	// Pending counts unclaimed source ids younger than Config.Settle.
	Pending int64 `json:"pending"`
	// ClaimsChecked is the number of claims the unexpected-apply check
	// looked at (those in its window).
	ClaimsChecked int64 `json:"claims_checked"`

	Missed     Found `json:"missed"`
	Unexpected Found `json:"unexpected"`
	Duplicates Found `json:"duplicates"`
	Partial    Found `json:"partial_commits"`

	// UnexpectedChecked is false when the unexpected-apply check was
	// skipped: the source held more than Config.MaxSourceIDs ids.
	UnexpectedChecked bool `json:"unexpected_checked"`
	DuplicatesChecked bool `json:"duplicates_checked"`
	PartialChecked    bool `json:"partial_checked"`
}

// Findings is the number of findings of every kind: anything the operator
// must look at. Uncheckable and pending ids are not findings.
func (r *Report) Findings() int {
	return int(r.Missed.Count + r.Unexpected.Count + r.Duplicates.Count + r.Partial.Count)
}

// OK reports whether the run found nothing.
func (r *Report) OK() bool { return r.Findings() == 0 }

// found returns the tally of kind k.
func (r *Report) found(k Kind) *Found {
	switch k {
	case Missed:
		return &r.Missed
	case Unexpected:
		return &r.Unexpected
	case Duplicate:
		return &r.Duplicates
	default:
		return &r.Partial
	}
}

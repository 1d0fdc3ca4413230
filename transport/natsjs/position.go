package natsjs

import (
	"strconv"

	"github.com/eoskit/eos/inbox"
)

var _ inbox.Positioner = (*Delivery)(nil)

// Position implements inbox.Positioner: the stream and the message's stream
// sequence ("ORDERS:42"), the same on every delivery of that message. Empty
// when the message carries no JetStream metadata.
func (d *Delivery) Position() string {
	md, err := d.m.Metadata()
	if err != nil {
		return ""
	}
	return md.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10)
}

package inbox

import (
	"bytes"
	"context"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
)

// ProcessTx is the twin of Process for a caller that already holds a
// transaction: it claims msg for the processor's consumer inside tx and, if
// the claim is new, runs h (the processor's handler when h is nil) in tx.
// A processor made with NewBatch runs its batch handler on msg alone when
// h is nil; a rejection is returned as an error wrapping ErrPermanent.
//
// It returns Applied, Duplicate or Quarantined (the conflict is recorded in
// tx). On an error the caller must roll tx back: nothing in it may be
// committed. The caller owns the commit; nothing is acknowledged here.
func (p *Processor[TTx]) ProcessTx(ctx context.Context, tx TTx, msg eos.Message, h Handler[TTx]) (Outcome, error) {
	if err := p.cfg.Limits.Validate(msg); err != nil {
		return 0, err
	}
	if h == nil {
		h = p.h
	}
	ex := p.drv.Executor(tx)
	now := p.cfg.Test.Now()
	fp := eos.Fingerprint(msg)
	fresh, err := ex.InboxClaim(ctx, p.cfg.Consumer, now, []driver.Claim{{ID: msg.ID, Fingerprint: fp}})
	if err != nil {
		return 0, p.storeErr(ctx, "inbox.claim", err)
	}
	if !fresh[0] {
		stored, err := ex.InboxFingerprints(ctx, p.cfg.Consumer, []string{msg.ID})
		if err != nil {
			return 0, p.storeErr(ctx, "inbox.fingerprints", err)
		}
		if sfp, ok := stored[msg.ID]; !ok || bytes.Equal(sfp, fp) {
			return Duplicate, nil
		}
		it := &item{msg: msg, fp: fp}
		if err := ex.QuarantineInsert(ctx, []driver.Quarantined{p.quarantined(it, stored[msg.ID], now)}); err != nil {
			return 0, p.storeErr(ctx, "inbox.quarantine", err)
		}
		return Quarantined, nil
	}
	if h == nil { // a batch processor
		b, err := p.callBatch(ctx, tx, []*item{{msg: msg}})
		if err != nil {
			return 0, err
		}
		if rerr, rejected := b.Rejected(0); rejected {
			return 0, Permanent(rerr)
		}
		return Applied, nil
	}
	if err := p.callHandler(ctx, h, tx, msg); err != nil {
		return 0, err
	}
	return Applied, nil
}

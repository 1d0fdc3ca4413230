package payments

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/eoskit/eos/inbox"
)

// SortByKey wraps src so that each batch it hands out is in key order
// (stable: deliveries with one key keep their order). Orders carry their
// account as key, and the order handler locks the account's row: when the
// batches of concurrent workers lock rows in one global order, they wait
// for each other instead of deadlocking (PostgreSQL), the claims being
// taken in id order by the inbox already.
func SortByKey(src inbox.Source) inbox.Source { return sortedSource{src} }

type sortedSource struct{ src inbox.Source }

func (s sortedSource) Fetch(ctx context.Context, max int, maxWait time.Duration) ([]inbox.Delivery, error) {
	ds, err := s.src.Fetch(ctx, max, maxWait)
	slices.SortStableFunc(ds, func(a, b inbox.Delivery) int { return strings.Compare(a.Message().Key, b.Message().Key) })
	return ds, err
}

package serve_test

import (
	"math"
	"testing"

	"github.com/eoskit/eos/serve"
)

func TestQuantile(t *testing.T) {
	// 10 observations: 4 at most 1, 4 more at most 2, 2 above 4 (+Inf).
	bs := []serve.Bucket{{UpperBound: 1, Count: 4}, {UpperBound: 2, Count: 8}, {UpperBound: 4, Count: 8}}
	for _, c := range []struct{ q, want float64 }{
		{0.2, 0.5},  // rank 2 of the first bucket's 4, from 0
		{0.5, 1.25}, // rank 5: the first of the second bucket's 4
		{0.8, 2},    // rank 8: the top of the second bucket
		{0.99, 4},   // in +Inf: the highest finite bound
	} {
		if got := serve.Quantile(c.q, bs, 10); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Quantile(%g) = %g, want %g", c.q, got, c.want)
		}
	}
	if got := serve.Quantile(0.5, nil, 0); !math.IsNaN(got) {
		t.Errorf("no observation: %g, want NaN", got)
	}
}

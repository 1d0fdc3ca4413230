package callonce_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/metrics"
)

// BenchmarkDo measures what callonce adds to a call (a claim and a
// completion in the store; the call itself does nothing), for a new key
// and for a recorded one (a redelivery).
func BenchmarkDo(b *testing.B) {
	for _, backend := range backends() {
		b.Run("store="+backend.name, func(b *testing.B) {
			c, err := callonce.New(backend.new(b, dedupe.Config{}), callonce.Config{})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			noop := func(context.Context, string) callonce.Outcome { return callonce.Done([]byte("ok")) }
			b.Run("new", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					if _, err := c.Do(ctx, "bench", "new-"+strconv.Itoa(i), nil, noop); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("recorded", func(b *testing.B) {
				if _, err := c.Do(ctx, "bench", "recorded", nil, noop); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if r, err := c.Do(ctx, "bench", "recorded", nil, noop); err != nil || !r.Replayed {
						b.Fatal(r, err)
					}
				}
			})
		})
	}
}

// BenchmarkDoHook measures what the metrics hook adds to a Do of a
// recorded key on Redis, the cheapest Do there is.
func BenchmarkDoHook(b *testing.B) {
	m, err := metrics.New(prometheus.NewRegistry(), metrics.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, hc := range []struct {
		name  string
		hooks []callonce.Hook
	}{{"none", nil}, {"metrics", []callonce.Hook{m.CallOnceHook("bench")}}} {
		b.Run("hook="+hc.name, func(b *testing.B) {
			c, err := callonce.New(redisStore(b, dedupe.Config{}), callonce.Config{Hooks: hc.hooks})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			noop := func(context.Context, string) callonce.Outcome { return callonce.Done([]byte("ok")) }
			if _, err := c.Do(ctx, "bench", "recorded", nil, noop); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if r, err := c.Do(ctx, "bench", "recorded", nil, noop); err != nil || !r.Replayed {
					b.Fatal(r, err)
				}
			}
		})
	}
}

package metrics

import (
	"fmt"
	"slices"
	"time"

	"github.com/eoskit/eos"
)

// Default bucket upper bounds of the histograms, in the unit of each
// histogram (seconds, or messages for the batch size).
var (
	// DefaultLatencyBuckets are the default of Config.LatencyBuckets:
	// 5ms to 5 minutes.
	DefaultLatencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
	// DefaultBatchSecondsBuckets are the default of
	// Config.BatchSecondsBuckets: 1ms to 10s.
	DefaultBatchSecondsBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// DefaultBatchSizeBuckets are the default of Config.BatchSizeBuckets:
	// powers of two from 1 to 4096.
	DefaultBatchSizeBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096}
)

// DefaultOutboxStatsTimeout is the default of Config.OutboxStatsTimeout.
const DefaultOutboxStatsTimeout = 5 * time.Second

// Config tunes a Metrics. The zero Config is ready to use.
type Config struct {
	// LatencyBuckets are the buckets of eos_end_to_end_seconds and
	// eos_relay_delay_seconds. Default DefaultLatencyBuckets.
	LatencyBuckets []float64
	// BatchSecondsBuckets are the buckets of eos_inbox_batch_seconds.
	// Default DefaultBatchSecondsBuckets.
	BatchSecondsBuckets []float64
	// BatchSizeBuckets are the buckets of eos_inbox_batch_size. Default
	// DefaultBatchSizeBuckets.
	BatchSizeBuckets []float64
	// NoExemplars leaves the duplicate and quarantine counters without
	// exemplars. Default false: exemplars on.
	NoExemplars bool
	// OutboxStatsTimeout bounds each read of an outbox's stats, or of a
	// broker consumer's lag, made for a scrape (see Metrics.WatchOutbox
	// and Metrics.WatchConsumer). Default DefaultOutboxStatsTimeout;
	// negative is invalid.
	OutboxStatsTimeout time.Duration
	// ReconcileMemory bounds the reconciliation findings remembered so
	// that each is counted once (see Metrics.ReconcileHook). Default
	// DefaultReconcileMemory; negative is invalid.
	ReconcileMemory int
	// Test holds the clock, which gives the age of an outbox's oldest
	// unsent row.
	Test eos.TestConfig
}

// WithDefaults returns a copy of c with the defaults applied, or a
// *eos.ConfigError naming the first invalid field. Bucket bounds must be
// strictly increasing.
func (c Config) WithDefaults() (Config, error) {
	switch {
	case c.OutboxStatsTimeout < 0:
		return c, &eos.ConfigError{Field: "metrics.Config.OutboxStatsTimeout",
			Reason: fmt.Sprintf("negative: %v", c.OutboxStatsTimeout)}
	case c.OutboxStatsTimeout == 0:
		c.OutboxStatsTimeout = DefaultOutboxStatsTimeout
	}
	switch {
	case c.ReconcileMemory < 0:
		return c, &eos.ConfigError{Field: "metrics.Config.ReconcileMemory",
			Reason: fmt.Sprintf("negative: %d", c.ReconcileMemory)}
	case c.ReconcileMemory == 0:
		c.ReconcileMemory = DefaultReconcileMemory
	}
	c.Test = c.Test.WithDefaults()
	for _, f := range []struct {
		name string
		p    *[]float64
		def  []float64
	}{
		{"LatencyBuckets", &c.LatencyBuckets, DefaultLatencyBuckets},
		{"BatchSecondsBuckets", &c.BatchSecondsBuckets, DefaultBatchSecondsBuckets},
		{"BatchSizeBuckets", &c.BatchSizeBuckets, DefaultBatchSizeBuckets},
	} {
		if len(*f.p) == 0 {
			*f.p = f.def
		}
		*f.p = slices.Clone(*f.p) // a caller changing its slice later changes nothing here
		for i := 1; i < len(*f.p); i++ {
			if !((*f.p)[i] > (*f.p)[i-1]) {
				return c, &eos.ConfigError{Field: "metrics.Config." + f.name,
					Reason: fmt.Sprintf("bounds must increase: %g after %g", (*f.p)[i], (*f.p)[i-1])}
			}
		}
	}
	return c, nil
}

package scrape

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func label(name, value string) []*dto.LabelPair {
	return []*dto.LabelPair{{Name: proto.String(name), Value: proto.String(value)}}
}

// What a registry would not produce is summed where it can be and left
// out (counted) where it cannot, never a panic: series without their
// type's value, the same series twice in one source, summaries (count and
// sum kept, quantiles dropped), histograms with native buckets.
func TestMergeOddInput(t *testing.T) {
	counter := dto.MetricType_COUNTER
	summary := dto.MetricType_SUMMARY
	histogram := dto.MetricType_HISTOGRAM
	src := []*dto.MetricFamily{
		{Name: proto.String("t_c"), Type: &counter, Metric: []*dto.Metric{
			{Label: label("k", "a"), Counter: &dto.Counter{Value: proto.Float64(1)}},
			{Label: label("k", "a"), Counter: &dto.Counter{Value: proto.Float64(2)}},
			{Label: label("k", "b"), Gauge: &dto.Gauge{Value: proto.Float64(5)}}, // no counter value
			nil,
		}},
		{Name: proto.String("t_s"), Type: &summary, Metric: []*dto.Metric{
			{Summary: &dto.Summary{SampleCount: proto.Uint64(3), SampleSum: proto.Float64(1.5),
				Quantile: []*dto.Quantile{{Quantile: proto.Float64(0.5), Value: proto.Float64(0.4)}}}},
		}},
		{Name: proto.String("t_h"), Type: &histogram, Metric: []*dto.Metric{
			{Histogram: &dto.Histogram{SampleCount: proto.Uint64(1), SampleSum: proto.Float64(2), Schema: proto.Int32(3),
				Bucket: []*dto.Bucket{{UpperBound: proto.Float64(5), CumulativeCount: proto.Uint64(1)}}}},
		}},
	}
	a, conflicts := newSnapshot(src)
	if conflicts != 2 {
		t.Errorf("%d left out, want 2 (a gauge in a counter family, a nil series)", conflicts)
	}
	b, _ := newSnapshot(src)
	sum := snapshot{}
	sum.add(a, false)
	sum.add(b, true)
	byName := map[string]*dto.MetricFamily{}
	for _, f := range sum.families() {
		byName[f.GetName()] = f
	}
	if c := byName["t_c"].GetMetric(); len(c) != 1 || c[0].GetCounter().GetValue() != 6 {
		t.Errorf("t_c %v, want one series of (1+2)×2", c)
	}
	s := byName["t_s"].GetMetric()[0].GetSummary()
	if s.GetSampleCount() != 6 || s.GetSampleSum() != 3 || len(s.GetQuantile()) != 0 {
		t.Errorf("t_s %v, want count 6, sum 3, no quantiles", s)
	}
	h := byName["t_h"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 2 || h.GetBucket()[0].GetCumulativeCount() != 2 || h.Schema != nil {
		t.Errorf("t_h %v, want classic buckets summed, no native ones", h)
	}
	// The sources were not changed by the sums.
	if src[0].GetMetric()[0].GetCounter().GetValue() != 1 || len(src[1].GetMetric()[0].GetSummary().GetQuantile()) != 1 {
		t.Error("a source was changed")
	}
}

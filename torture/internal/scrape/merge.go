package scrape

import (
	"maps"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// snapshot is the metrics of one source, or the sum of several: families
// by name.
type snapshot map[string]*family

// family is one metric family: its help and type come from the first
// source that had it; its series are by label set.
type family struct {
	help   string
	typ    dto.MetricType
	series map[string]*dto.Metric
}

// newSnapshot indexes decoded families. Two families of one name, or two
// series of one label set, are summed as if they came from two sources.
func newSnapshot(fams []*dto.MetricFamily) (snapshot, int) {
	s := snapshot{}
	conflicts := 0
	for _, f := range fams {
		conflicts += s.addFamily(f, false)
	}
	return s, conflicts
}

// cumulative reports whether values of typ only grow during a process's
// life, so that a dead process's last values still count.
func cumulative(typ dto.MetricType) bool {
	switch typ {
	case dto.MetricType_COUNTER, dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY:
		return true
	}
	return false
}

// add adds src's series to s (only the cumulative ones with
// cumulativeOnly) and returns how many it had to leave out: series whose
// family has another type in s, and histograms whose buckets differ.
func (s snapshot) add(src snapshot, cumulativeOnly bool) int {
	conflicts := 0
	for _, name := range slices.Sorted(maps.Keys(src)) {
		f := src[name]
		if cumulativeOnly && !cumulative(f.typ) {
			continue
		}
		conflicts += s.addSeries(name, f.help, f.typ, f.series)
	}
	return conflicts
}

func (s snapshot) addFamily(f *dto.MetricFamily, cumulativeOnly bool) int {
	if cumulativeOnly && !cumulative(f.GetType()) {
		return 0
	}
	series := make(map[string]*dto.Metric, len(f.GetMetric()))
	conflicts := 0
	for _, m := range f.GetMetric() {
		if !hasValue(m, f.GetType()) {
			conflicts++
			continue
		}
		k := labelKey(m.GetLabel())
		if prev, ok := series[k]; ok {
			if !sumInto(prev, m, f.GetType()) {
				conflicts++
			}
			continue
		}
		series[k] = normalized(m)
	}
	return conflicts + s.addSeries(f.GetName(), f.GetHelp(), f.GetType(), series)
}

// addSeries adds series of the family name (help, typ) to s, copying
// what it keeps: s never shares a message with its sources.
func (s snapshot) addSeries(name, help string, typ dto.MetricType, series map[string]*dto.Metric) int {
	d, ok := s[name]
	if !ok {
		d = &family{help: help, typ: typ, series: map[string]*dto.Metric{}}
		s[name] = d
	}
	if d.typ != typ {
		return len(series)
	}
	conflicts := 0
	for k, m := range series {
		prev, ok := d.series[k]
		if !ok {
			d.series[k] = normalized(m)
			continue
		}
		if !sumInto(prev, m, typ) {
			conflicts++
		}
	}
	return conflicts
}

// hasValue reports whether m holds the value of its family's type: a
// series without it could be neither summed nor exposed.
func hasValue(m *dto.Metric, typ dto.MetricType) bool {
	switch {
	case m == nil:
		return false
	case typ == dto.MetricType_COUNTER:
		return m.Counter != nil
	case typ == dto.MetricType_GAUGE:
		return m.Gauge != nil
	case typ == dto.MetricType_UNTYPED:
		return m.Untyped != nil
	case typ == dto.MetricType_SUMMARY:
		return m.Summary != nil
	case typ == dto.MetricType_HISTOGRAM, typ == dto.MetricType_GAUGE_HISTOGRAM:
		return m.Histogram != nil
	}
	return false
}

// normalized returns a copy of m without what a sum cannot keep: its
// timestamp, its created timestamp, a summary's quantiles and a
// histogram's native (sparse) buckets.
func normalized(m *dto.Metric) *dto.Metric {
	c := proto.Clone(m).(*dto.Metric)
	c.TimestampMs = nil
	if c.Counter != nil {
		c.Counter.CreatedTimestamp = nil
	}
	if c.Summary != nil {
		c.Summary.CreatedTimestamp = nil
		c.Summary.Quantile = nil
	}
	if h := c.Histogram; h != nil {
		h.CreatedTimestamp = nil
		h.Schema, h.ZeroThreshold, h.ZeroCount, h.ZeroCountFloat = nil, nil, nil, nil
		h.NegativeSpan, h.NegativeDelta, h.NegativeCount = nil, nil, nil
		h.PositiveSpan, h.PositiveDelta, h.PositiveCount = nil, nil, nil
		h.Exemplars = nil
	}
	return c
}

// sumInto adds src's values to dst, a normalized series of the same
// family and labels. It reports false, leaving dst as it was, when they
// cannot be summed (a type's value missing, histogram buckets that
// differ).
func sumInto(dst, src *dto.Metric, typ dto.MetricType) bool {
	switch typ {
	case dto.MetricType_COUNTER:
		if dst.Counter == nil || src.Counter == nil {
			return false
		}
		dst.Counter.Value = proto.Float64(dst.Counter.GetValue() + src.Counter.GetValue())
		dst.Counter.Exemplar = latest(dst.Counter.Exemplar, src.Counter.Exemplar)
	case dto.MetricType_GAUGE:
		if dst.Gauge == nil || src.Gauge == nil {
			return false
		}
		dst.Gauge.Value = proto.Float64(dst.Gauge.GetValue() + src.Gauge.GetValue())
	case dto.MetricType_UNTYPED:
		if dst.Untyped == nil || src.Untyped == nil {
			return false
		}
		dst.Untyped.Value = proto.Float64(dst.Untyped.GetValue() + src.Untyped.GetValue())
	case dto.MetricType_SUMMARY:
		if dst.Summary == nil || src.Summary == nil {
			return false
		}
		dst.Summary.SampleCount = proto.Uint64(dst.Summary.GetSampleCount() + src.Summary.GetSampleCount())
		dst.Summary.SampleSum = proto.Float64(dst.Summary.GetSampleSum() + src.Summary.GetSampleSum())
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return sumHistogram(dst.Histogram, src.Histogram)
	default:
		return false
	}
	return true
}

// sumHistogram adds src to dst bucket by bucket; their bucket bounds must
// be the same.
func sumHistogram(dst, src *dto.Histogram) bool {
	if dst == nil || src == nil || len(dst.Bucket) != len(src.Bucket) {
		return false
	}
	for i, b := range dst.Bucket {
		if b.GetUpperBound() != src.Bucket[i].GetUpperBound() {
			return false
		}
	}
	for i, b := range dst.Bucket {
		sb := src.Bucket[i]
		b.CumulativeCount = proto.Uint64(b.GetCumulativeCount() + sb.GetCumulativeCount())
		if b.CumulativeCountFloat != nil || sb.CumulativeCountFloat != nil {
			b.CumulativeCountFloat = proto.Float64(b.GetCumulativeCountFloat() + sb.GetCumulativeCountFloat())
		}
		b.Exemplar = latest(b.Exemplar, sb.Exemplar)
	}
	dst.SampleCount = proto.Uint64(dst.GetSampleCount() + src.GetSampleCount())
	if dst.SampleCountFloat != nil || src.SampleCountFloat != nil {
		dst.SampleCountFloat = proto.Float64(dst.GetSampleCountFloat() + src.GetSampleCountFloat())
	}
	dst.SampleSum = proto.Float64(dst.GetSampleSum() + src.GetSampleSum())
	return true
}

// latest returns the later of two exemplars (a copy of src when it is the
// one): an exemplar without a timestamp is older than one with.
func latest(dst, src *dto.Exemplar) *dto.Exemplar {
	if src == nil || (dst != nil && !src.GetTimestamp().AsTime().After(dst.GetTimestamp().AsTime())) {
		return dst
	}
	return proto.Clone(src).(*dto.Exemplar)
}

// families returns s as the families a Gatherer returns: sorted by name,
// their series by labels.
func (s snapshot) families() []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(s))
	for _, name := range slices.Sorted(maps.Keys(s)) {
		f := s[name]
		if len(f.series) == 0 {
			continue
		}
		mf := &dto.MetricFamily{Name: proto.String(name), Help: proto.String(f.help), Type: f.typ.Enum()}
		for _, k := range slices.Sorted(maps.Keys(f.series)) {
			mf.Metric = append(mf.Metric, proto.Clone(f.series[k]).(*dto.Metric))
		}
		out = append(out, mf)
	}
	return out
}

// labelKey identifies a label set whatever the order of its pairs.
func labelKey(labels []*dto.LabelPair) string {
	pairs := make([]string, 0, len(labels))
	for _, l := range labels {
		pairs = append(pairs, l.GetName()+"\xff"+l.GetValue())
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "\xfe")
}

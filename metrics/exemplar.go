package metrics

import (
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Exemplar label names.
const (
	labelMessageID = "message_id"
	labelTraceID   = "trace_id"
)

// exemplar returns the labels of an exemplar naming message id and, when
// headers hold a valid W3C traceparent, its trace id. The message id is
// cut to fit the exemplar's bound (prometheus.ExemplarMaxRunes over all
// names and values); an invalid UTF-8 sequence becomes U+FFFD.
func exemplar(id string, headers map[string]string) prometheus.Labels {
	l := prometheus.Labels{}
	budget := prometheus.ExemplarMaxRunes - utf8.RuneCountInString(labelMessageID)
	if tid := traceID(headers); tid != "" {
		l[labelTraceID] = tid
		budget -= utf8.RuneCountInString(labelTraceID) + len(tid)
	}
	l[labelMessageID] = truncateRunes(strings.ToValidUTF8(id, "\uFFFD"), budget)
	return l
}

// truncateRunes returns s cut to at most n runes.
func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s // at most n bytes, so at most n runes
	}
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// traceID returns the trace id of the W3C traceparent header
// (version-traceid-parentid-flags, lower-case hex), or "" when there is
// none or it is malformed or all zeros.
func traceID(headers map[string]string) string {
	tp, ok := headers["traceparent"]
	if !ok {
		tp, ok = headers["Traceparent"]
	}
	if !ok || len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return ""
	}
	if tp[:2] == "ff" || !lowerHex(tp[:2]) || !lowerHex(tp[53:55]) || !lowerHex(tp[36:52]) {
		return ""
	}
	if len(tp) > 55 && (tp[:2] == "00" || tp[55] != '-') {
		return "" // version 00 has nothing after the flags; a later one, a dash first
	}
	tid := tp[3:35]
	if !lowerHex(tid) || strings.Count(tid, "0") == len(tid) {
		return ""
	}
	return tid
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

package deploy_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// PromQL words that are not metric names when they stand alone.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true, "atan2": true,
}

// labelListKeywords are followed by a parenthesized list of label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// metricNames returns the metric names an expression selects, in order of
// appearance. It is a lexer, not a parser (promtool checks that the
// expression parses): it skips strings, comments, label matchers ({…}),
// ranges ([…]), numbers and durations, the label lists after by, without,
// on, ignoring and group_*, keywords, and identifiers followed by "(" or by
// "by"/"without" (the functions and aggregations); every other identifier
// is a metric name.
func metricNames(expr string) []string {
	var names []string
	rs := []rune(expr)
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(rs, i)
		case c == '#':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case c == '{':
			i = skipBalanced(rs, i, '{', '}')
		case c == '[':
			i = skipBalanced(rs, i, '[', ']')
		case c >= '0' && c <= '9' || c == '.':
			for i < len(rs) && (isIdent(rs[i]) || rs[i] == '.') {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < len(rs) && isIdent(rs[i]) {
				i++
			}
			word := string(rs[start:i])
			next := i
			for next < len(rs) && (rs[next] == ' ' || rs[next] == '\t' || rs[next] == '\n') {
				next++
			}
			switch {
			case labelListKeywords[word] && next < len(rs) && rs[next] == '(':
				i = skipBalanced(rs, next, '(', ')')
			case promqlKeywords[word]:
			case next < len(rs) && rs[next] == '(':
				// a function or an aggregation
			case hasWordAt(rs, next, "by") || hasWordAt(rs, next, "without"):
				// an aggregation with its grouping first: sum by (a) (…)
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	return names
}

// hasWordAt reports whether the identifier at i is word.
func hasWordAt(rs []rune, i int, word string) bool {
	end := i + len(word)
	return end <= len(rs) && string(rs[i:end]) == word && (end == len(rs) || !isIdent(rs[end]))
}

func isIdentStart(c rune) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdent(c rune) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// skipString returns the index after the string literal starting at i.
func skipString(rs []rune, i int) int {
	q := rs[i]
	for i++; i < len(rs); i++ {
		switch {
		case rs[i] == '\\' && q != '`':
			i++
		case rs[i] == q:
			return i + 1
		}
	}
	return i
}

// skipBalanced returns the index after the bracket opened at i and its
// match, skipping strings inside.
func skipBalanced(rs []rune, i int, open, close rune) int {
	depth := 0
	for i < len(rs) {
		switch rs[i] {
		case '"', '\'', '`':
			i = skipString(rs, i)
			continue
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return i
}

// grafanaVars are Grafana's built-in interval variables, replaced by a
// duration so that the query parses.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m", "${__rate_interval}", "5m",
	"$__range", "1h", "${__range}", "1h",
	"$__interval", "1m", "${__interval}", "1m",
)

var templateVar = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

// substitute replaces the variables of a dashboard's or a runbook's query
// by values that parse: durations for Grafana's intervals, value for a
// template variable (they only occur in label matchers' strings; ".*"
// stands for a dashboard's All).
func substitute(expr, value string) string {
	return templateVar.ReplaceAllString(grafanaVars.Replace(expr), value)
}

func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (service, consumer) (rate(eos_a_total{consumer=~"x", outcome="a{b}"}[5m]))`, []string{"eos_a_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(eos_b_bucket[5m:1m])))`, []string{"eos_b_bucket"}},
		{`eos:x:rate5m / on (consumer) group_left (service) eos_c > 1e6 and eos_d offset 10m`, []string{"eos:x:rate5m", "eos_c", "eos_d"}},
		{`sum(eos_e) without (instance) * 2 unless eos_f # eos_not_a_name`, []string{"eos_e", "eos_f"}},
		{`time() - max(eos_g) > bool inf`, []string{"eos_g"}},
		{`sum by (service, consumer) (rate(eos_a_total[$__rate_interval]))`, []string{"eos_a_total"}},
	} {
		if got := metricNames(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("metricNames(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
	if got := substitute(`rate(x{a=~"$consumer", b="${service}"}[$__rate_interval]) [$__range]`, "x"); got != `rate(x{a=~"x", b="x"}[5m]) [1h]` {
		t.Errorf("substitute = %q", got)
	}
}

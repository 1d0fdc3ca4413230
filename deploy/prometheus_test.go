package deploy_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/deploy"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/promtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/metrics"
	"github.com/eoskit/eos/outbox"
	"github.com/eoskit/eos/outbox/outboxtest"
)

// TestPrometheusScrapesEos has a real Prometheus, loaded with eos's rule
// files, scrape a target serving eos's metrics fed by a real inbox and
// relay (paymentsTarget); see scrapeCheck for what must hold.
func TestPrometheusScrapesEos(t *testing.T) {
	scrapeCheck{
		Target: paymentsTarget(t),
		Recorded: []string{
			"eos:inbox_applied:rate5m", "eos:inbox_messages:rate5m", "eos:duplicates_suppressed:rate5m",
			"eos:duplicates_suppressed_per_million:ratio_rate5m", "eos:reprocessed:rate5m", "eos:dedupe_store_errors:rate5m",
			"eos:dead_lettered:rate5m", "eos:quarantined:rate5m", "eos:end_to_end_seconds:p99_rate5m",
			"eos:inbox_phase_seconds:p99_rate5m", "eos:relay_published:rate5m", "eos:outbox_oldest_unsent_seconds:max",
		},
		Exemplars: []string{"eos_duplicates_suppressed_total"},
	}.run(t)
}

// scrapeCheck is what a real Prometheus, loaded with eos's rule files,
// must see of a target serving eos's metrics during a correct run: every
// series the target exports reaches it, every rule evaluates without
// error, the Recorded series have values, the Exemplars counters' exemplars
// (with a message_id) are stored, no page-level alert is active
// (quarantined and dead-lettered messages are tickets), and every query of
// the dashboards, rules and runbooks runs. The target is any address: the
// test's own here, a demo run's status endpoint in TestPrometheusScrapesDemo.
type scrapeCheck struct {
	Target    string // host:port serving /metrics
	Recorded  []string
	Exemplars []string
}

// run makes the checks and returns the Prometheus, which keeps scraping
// until the test ends.
func (c scrapeCheck) run(t *testing.T) *promtest.Server {
	t.Helper()
	var ruleFiles []string
	for _, f := range deploy.RuleFiles() {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		ruleFiles = append(ruleFiles, abs)
	}
	prom := promtest.Start(t, promtest.Config{Targets: []string{c.Target}, RuleFiles: ruleFiles, Exemplars: true})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	want, err := targetSeries(ctx, "http://"+c.Target+promtest.DefaultMetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	checkSeriesScraped(ctx, t, prom, want)
	checkRulesHealthy(ctx, t, prom)
	checkRecorded(ctx, t, prom, c.Recorded)
	for _, counter := range c.Exemplars {
		checkExemplars(ctx, t, prom, counter)
	}
	checkNoPage(ctx, t, prom)
	have := maps.Clone(want)
	for _, r := range c.Recorded {
		have[r] = true
	}
	checkQueriesRun(ctx, t, prom, queries(t), have)
	return prom
}

// targetSeries reads a target's metrics (text format) and returns the
// names of the series its # TYPE lines announce, histograms' _bucket,
// _sum and _count included.
func targetSeries(ctx context.Context, url string) (map[string]bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	series := map[string]bool{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			typ, ok := dto.MetricType_value[strings.ToUpper(f[3])]
			if !ok {
				typ = int32(dto.MetricType_UNTYPED)
			}
			addSeries(series, f[2], dto.MetricType(typ))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(series) == 0 {
		return nil, fmt.Errorf("GET %s: no metrics", url)
	}
	return series, nil
}

// paymentsTarget serves the metrics of a real inbox (SQLite, the payments
// workload) and relay, and makes progress at each scrape: before answering
// it processes a batch of new payments, a redelivery of the last batch's
// first (a duplicate) and, every third scrape, a reused id with another
// amount (quarantined) and a message without id (dead-lettered), then lets
// the relay forward the outbox. Each scrape thus sees the counters move,
// without a timer.
func paymentsTarget(t *testing.T) (addr string) {
	t.Helper()
	ctx := context.Background()
	e := testdb.SQLite(t)
	pay := testdb.Payments[*sql.Tx]{E: e}
	pay.Setup(t, 10, 1_000_000)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(e.Driver, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchOutbox("payments", ob.Stats); err != nil {
		t.Fatal(err)
	}
	h := func(ctx context.Context, tx *sql.Tx, msg eos.Message) error {
		if err := pay.Handler(ctx, tx, msg); err != nil {
			return err
		}
		return ob.Enqueue(ctx, tx, "payments", eos.Message{ID: "charge-" + msg.ID, Key: msg.Key, Payload: msg.Payload})
	}
	p, err := inbox.New(e.Driver, h, inbox.Config{Consumer: "orders", Hooks: []inbox.Hook{m.InboxHook()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchInbox("orders", p.Activity); err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(e.Driver, outboxtest.NewPublisher(), outbox.RelayConfig{Hooks: []outbox.Hook{m.RelayHook()}})
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	round := 0
	var last eos.Message
	step := func() error {
		mu.Lock()
		defer mu.Unlock()
		round++
		var msgs []eos.Message
		if round > 1 {
			msgs = append(msgs, last)
		}
		for i := range 10 {
			msg := testdb.Message(fmt.Sprintf("o-%d-%d", round, i), testdb.Account(i), 1)
			msg.CreatedAt = time.Now().Add(-50 * time.Millisecond)
			msgs = append(msgs, msg)
		}
		last = msgs[len(msgs)-1]
		if round%3 == 0 {
			reused := testdb.Message(fmt.Sprintf("o-%d-0", round-1), testdb.Account(0), 2)
			msgs = append(msgs, reused, eos.Message{Payload: []byte("1")})
		}
		if _, err := p.Process(ctx, inboxtest.NewDeliveries(msgs...).Inbox()); err != nil {
			return err
		}
		_, err := relay.Forward(ctx)
		return err
	}
	if err := step(); err != nil { // the first series exist before the first scrape
		t.Fatal(err)
	}
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := step(); err != nil {
			t.Errorf("payments target: %v", err)
		}
		metricsHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// checkSeriesScraped waits until every series name in want is stored by
// prom.
func checkSeriesScraped(ctx context.Context, t *testing.T, prom *promtest.Server, want map[string]bool) {
	t.Helper()
	err := promtest.Eventually(ctx, func(ctx context.Context) error {
		got, err := prom.Query(ctx, `count by (__name__) ({__name__=~"eos_.+"})`)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, s := range got {
			have[s.Metric["__name__"]] = true
		}
		var missing []string
		for name := range want {
			if !have[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			return fmt.Errorf("%w: series not scraped: %s", promtest.ErrNotYet, strings.Join(missing, ", "))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkRulesHealthy waits until every rule of every loaded group has been
// evaluated, and fails on any that evaluated with an error.
func checkRulesHealthy(ctx context.Context, t *testing.T, prom *promtest.Server) {
	t.Helper()
	err := promtest.Eventually(ctx, func(ctx context.Context) error {
		groups, err := prom.Rules(ctx)
		if err != nil {
			return err
		}
		n := 0
		for _, g := range groups {
			for _, r := range g.Rules {
				n++
				switch r.Health {
				case "ok":
				case "unknown":
					return fmt.Errorf("%w: rule %s not evaluated", promtest.ErrNotYet, r.Name)
				default:
					return fmt.Errorf("rule %s of group %s: %s: %s", r.Name, g.Name, r.Health, r.Error)
				}
			}
		}
		if n == 0 {
			return fmt.Errorf("no rules loaded")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkRecorded waits until each recorded series has a sample.
func checkRecorded(ctx context.Context, t *testing.T, prom *promtest.Server, names []string) {
	t.Helper()
	for _, name := range names {
		err := promtest.Eventually(ctx, func(ctx context.Context) error {
			got, err := prom.Query(ctx, name)
			if err != nil {
				return err
			}
			if len(got) == 0 {
				return fmt.Errorf("%w: %s has no sample", promtest.ErrNotYet, name)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	got, err := prom.Query(ctx, `eos:inbox_applied:rate5m > 0`)
	if err != nil || len(got) == 0 {
		t.Errorf("eos:inbox_applied:rate5m is not positive on a run that applies messages (%v)", err)
	}
}

// checkExemplars waits until prom stores an exemplar naming a message of
// counter.
func checkExemplars(ctx context.Context, t *testing.T, prom *promtest.Server, counter string) {
	t.Helper()
	start := time.Now().Add(-time.Hour)
	err := promtest.Eventually(ctx, func(ctx context.Context) error {
		series, err := prom.Exemplars(ctx, counter, start, time.Now())
		if err != nil {
			return err
		}
		for _, s := range series {
			for _, e := range s.Exemplars {
				if e.Labels["message_id"] != "" {
					return nil
				}
			}
		}
		return fmt.Errorf("%w: no exemplar with a message_id on %s", promtest.ErrNotYet, counter)
	})
	if err != nil {
		t.Error(err)
	}
}

// checkQueriesRun runs every query of the dashboards, rules and runbooks
// on prom, with data: parsing is not enough (a join can fail on duplicate
// series only at run time). A dashboard panel's query, with its variables
// set to All, must also show data when every series it names has some
// (have) and it filters nothing out by a comparison; other empty results
// are fine (the run has no duplicate effect, for one).
func checkQueriesRun(ctx context.Context, t *testing.T, prom *promtest.Server, qs []query, have map[string]bool) {
	t.Helper()
	for _, q := range qs {
		if _, err := prom.Query(ctx, q.expr); err != nil {
			t.Errorf("%s: %q: %v", q.where, q.expr, err)
		}
		if q.all == "" || strings.ContainsAny(q.all, "<>") {
			continue
		}
		names := metricNames(q.all)
		if !slices.ContainsFunc(names, func(n string) bool { return !have[n] }) {
			got, err := prom.Query(ctx, q.all)
			if err == nil && len(got) == 0 {
				t.Errorf("%s: %q shows nothing though %s have data", q.where, q.all, strings.Join(names, ", "))
			}
		}
	}
}

// checkNoPage fails on any page-level alert active (pending or firing).
// Called once the rules have been evaluated with data.
func checkNoPage(ctx context.Context, t *testing.T, prom *promtest.Server) {
	t.Helper()
	alerts, err := prom.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if a.Labels["severity"] == "page" {
			t.Errorf("page alert %s is %s on a correct run: %v", a.Labels["alertname"], a.State, a.Labels)
		}
	}
}

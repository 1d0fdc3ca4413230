package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eoskit/eos/internal/testenv"
)

// Defaults of Config.
const (
	DefaultScrapeInterval = time.Second
	DefaultMetricsPath    = "/metrics"
	// DefaultStartTimeout bounds the wait for Prometheus to be ready.
	DefaultStartTimeout = 30 * time.Second
	// pollEvery is how often Eventually asks again: Prometheus offers no
	// signal for "scraped" or "evaluated".
	pollEvery = 200 * time.Millisecond
	// maxResponse bounds what is read of one API response.
	maxResponse = 16 << 20
)

// Config describes the Prometheus to start.
type Config struct {
	// Targets are the host:port addresses to scrape, as job "eos".
	Targets []string
	// MetricsPath is the path scraped on each target. Default
	// DefaultMetricsPath.
	MetricsPath string
	// BearerToken, when set, is sent on each scrape.
	BearerToken string
	// RuleFiles are the rule files to load (paths; globs allowed).
	RuleFiles []string
	// ScrapeInterval is also the rules' evaluation interval. Default
	// DefaultScrapeInterval.
	ScrapeInterval time.Duration
	// Exemplars turns on Prometheus's exemplar storage (an OpenMetrics
	// scrape keeps them).
	Exemplars bool
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.MetricsPath == "" {
		c.MetricsPath = DefaultMetricsPath
	}
	if c.ScrapeInterval <= 0 {
		c.ScrapeInterval = DefaultScrapeInterval
	}
	return c
}

// Server is a running Prometheus, stopped when the test ends.
type Server struct {
	// URL is its base URL, http://127.0.0.1:PORT.
	URL    string
	client *http.Client
	log    string // its log file
}

// Start starts the prometheus of PATH (the test skips, or fails when
// services are required, if there is none) with a configuration written
// from cfg, its data in a temporary directory, listening on a free
// loopback port, and waits until it is ready.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin := testenv.Tool(t, "prometheus")
	cfg = cfg.WithDefaults()
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(configYAML(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg.BearerToken != "" {
		if err := os.WriteFile(filepath.Join(dir, "token"), []byte(cfg.BearerToken), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var lastErr error
	for range 3 { // a free port can be taken between its choice and the listen
		s, err := start(t, bin, conf, dir, cfg)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("prometheus did not start: %v", lastErr)
	return nil
}

// configYAML is the configuration file for cfg. Every value is written
// as a JSON string, which YAML reads as the same string.
func configYAML(cfg Config) string {
	q := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n", cfg.ScrapeInterval, cfg.ScrapeInterval)
	b.WriteString("rule_files:\n")
	for _, f := range cfg.RuleFiles {
		fmt.Fprintf(&b, "  - %s\n", q(f))
	}
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: eos\n    metrics_path: %s\n", q(cfg.MetricsPath))
	if cfg.BearerToken != "" {
		b.WriteString("    authorization:\n      credentials_file: token\n")
	}
	b.WriteString("    static_configs:\n      - targets:\n")
	for _, tg := range cfg.Targets {
		fmt.Fprintf(&b, "          - %s\n", q(tg))
	}
	return b.String()
}

func start(t testing.TB, bin, conf, dir string, cfg Config) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(dir, "prometheus-"+strconv.Itoa(port)+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	args := []string{
		"--config.file=" + conf,
		"--storage.tsdb.path=" + filepath.Join(dir, "data-"+strconv.Itoa(port)),
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}
	if cfg.Exemplars {
		args = append(args, "--enable-feature=exemplar-storage")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s := &Server{URL: "http://" + addr, client: &http.Client{Timeout: 10 * time.Second}, log: logPath}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStartTimeout)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if s.ready(ctx) {
			t.Cleanup(func() {
				stop()
				if log := s.Log(); t.Failed() && log != "" {
					t.Logf("prometheus log:\n%s", log)
				}
			})
			return s, nil
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("prometheus exited: %v\n%s", err, s.Log())
		case <-ctx.Done():
			stop()
			return nil, fmt.Errorf("prometheus not ready on %s after %s\n%s", addr, DefaultStartTimeout, s.Log())
		case <-tick.C:
		}
	}
}

// freePort returns a loopback TCP port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) ready(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/-/ready", nil)
	if err != nil {
		return false
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Log returns the end of Prometheus's log.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return err.Error()
	}
	const tail = 8 << 10
	if len(b) > tail {
		b = b[len(b)-tail:]
	}
	return string(b)
}

// get calls the HTTP API at path with query and decodes its data.
func get[T any](ctx context.Context, s *Server, path string, query url.Values) (T, error) {
	var v T
	err := s.get(ctx, path, query, &v)
	return v, err
}

// get calls the HTTP API at path with query and decodes its data into v.
func (s *Server) get(ctx context.Context, path string, query url.Values, v any) error {
	u := s.URL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s: HTTP %d: %w", path, resp.StatusCode, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.NewDecoder(bytes.NewReader(env.Data)).Decode(v)
}

// Alert is an active (pending or firing) alert.
type Alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// Exemplar is one stored exemplar of a series.
type Exemplar struct {
	Labels map[string]string `json:"labels"`
	Value  string            `json:"value"`
}

// ExemplarSeries are the exemplars of one series.
type ExemplarSeries struct {
	SeriesLabels map[string]string `json:"seriesLabels"`
	Exemplars    []Exemplar        `json:"exemplars"`
}

// Sample is one series of an instant vector.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query evaluates expr now and returns the instant vector.
func (s *Server) Query(ctx context.Context, expr string) ([]Sample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := s.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", expr, data.ResultType)
	}
	out := make([]Sample, 0, len(data.Result))
	for _, r := range data.Result {
		str, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %w", expr, r.Value[1], err)
		}
		out = append(out, Sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// Rule is a recording rule or an alert as the rules API reports it.
type Rule struct {
	Name   string `json:"name"`
	Type   string `json:"type"`   // recording or alerting
	Health string `json:"health"` // ok, unknown (not evaluated yet) or err
	Error  string `json:"lastError"`
}

// RuleGroup is a group of rules of a loaded file.
type RuleGroup struct {
	Name  string `json:"name"`
	File  string `json:"file"`
	Rules []Rule `json:"rules"`
}

// Rules returns the loaded rule groups with each rule's health.
func (s *Server) Rules(ctx context.Context) ([]RuleGroup, error) {
	data, err := get[struct {
		Groups []RuleGroup `json:"groups"`
	}](ctx, s, "/api/v1/rules", nil)
	return data.Groups, err
}

// Alerts returns the active alerts.
func (s *Server) Alerts(ctx context.Context) ([]Alert, error) {
	data, err := get[struct {
		Alerts []Alert `json:"alerts"`
	}](ctx, s, "/api/v1/alerts", nil)
	return data.Alerts, err
}

// Exemplars returns the exemplars of the series expr selects, stored
// between start and end (Config.Exemplars must be on).
func (s *Server) Exemplars(ctx context.Context, expr string, start, end time.Time) ([]ExemplarSeries, error) {
	var data []ExemplarSeries
	err := s.get(ctx, "/api/v1/query_exemplars", url.Values{
		"query": {expr},
		"start": {strconv.FormatInt(start.Unix(), 10)},
		"end":   {strconv.FormatInt(end.Unix()+1, 10)},
	}, &data)
	return data, err
}

// ErrNotYet is what a condition of Eventually returns (wrapped, with
// what it saw) while the state it waits for has not come.
var ErrNotYet = errors.New("not yet")

// Eventually calls cond until it returns nil, fails with an error other
// than ErrNotYet, or ctx ends; Prometheus offers no signal for "scraped"
// or "evaluated", so this polls. It returns cond's last error.
func Eventually(ctx context.Context, cond func(ctx context.Context) error) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := cond(ctx)
		if err == nil || !errors.Is(err, ErrNotYet) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-tick.C:
		}
	}
}

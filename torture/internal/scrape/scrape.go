package scrape

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Defaults of Config.
const (
	// DefaultTimeout bounds one scrape of one worker: a worker that does
	// not answer in time is skipped (its last values stand in).
	DefaultTimeout = 2 * time.Second
	// DefaultMaxBytes bounds the bytes read from one worker per scrape,
	// and from one final-values file.
	DefaultMaxBytes = 8 << 20
)

// Names of the pool's own counters (registered on the registerer given
// to New).
const (
	ScrapeErrorsName = "eos_demo_worker_scrape_errors_total"
	ConflictsName    = "eos_demo_worker_merge_conflicts_total"
)

// Config tunes a Pool. The zero Config is ready to use.
type Config struct {
	Timeout  time.Duration // per worker and scrape; default DefaultTimeout
	MaxBytes int64         // per worker and scrape; default DefaultMaxBytes
}

// WithDefaults returns a copy of c with the defaults applied (in place of
// zero or negative values).
func (c Config) WithDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	return c
}

// Pool scrapes the workers announced to it and sums their metrics; it is
// a prometheus.Gatherer. Safe for concurrent use.
type Pool struct {
	cfg       Config
	client    *http.Client
	errors    prometheus.Counter
	conflicts prometheus.Counter

	mu      sync.Mutex
	workers map[string]*worker
	seq     uint64 // numbers scrapes, so that an older answer never replaces a newer one
}

// worker is one supervised child across its lives.
type worker struct {
	lives   []*life  // lives not folded into carried yet
	carried snapshot // cumulative values of the lives that ended
	latest  int      // highest start announced or ended
}

// life is one process of a worker (one start).
type life struct {
	w        *worker
	start    int
	url      string // "" when it never announced one
	last     snapshot
	lastSeq  uint64
	ended    bool // the process is gone
	inflight int  // scrapes under way
}

// New returns a pool registering its counters on reg: scrapes that failed
// (ScrapeErrorsName) and series left out of a sum (ConflictsName).
func New(reg prometheus.Registerer, cfg Config) (*Pool, error) {
	cfg = cfg.WithDefaults()
	p := &Pool{
		cfg: cfg,
		client: &http.Client{
			// Loopback only: no proxy, no redirects, no compression (the
			// byte bound applies to what is decoded).
			Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 1, IdleConnTimeout: 10 * time.Second},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: ScrapeErrorsName,
			Help: "Scrapes of a worker process that failed, timed out or were too large, and worker announcements refused; the worker's last values stood in."}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: ConflictsName,
			Help: "Worker series left out of the sums: a family of another type, or histogram buckets that differ, under the same name."}),
		workers: map[string]*worker{},
	}
	for _, c := range []prometheus.Collector{p.errors, p.conflicts} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Close releases the pool's idle connections.
func (p *Pool) Close() { p.client.CloseIdleConnections() }

func (p *Pool) worker(child string) *worker {
	w, ok := p.workers[child]
	if !ok {
		w = &worker{carried: snapshot{}}
		p.workers[child] = w
	}
	return w
}

// Announce records that start (see supervisor.StartEnv) of child serves
// its metrics at addr, as a Server's Addr gives it. An announcement of a
// start older than the latest one is ignored; an invalid address is
// refused (and counted as a scrape error).
func (p *Pool) Announce(child string, start int, addr string) error {
	url, err := parseAddr(addr)
	if err != nil {
		p.errors.Inc()
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.worker(child)
	if start <= w.latest {
		return nil
	}
	w.latest = start
	w.lives = append(w.lives, &life{w: w, start: start, url: url})
	return nil
}

// End records that start of child is over: its process is gone. When
// finalFile names a file (WriteFile) it holds the life's values at its
// end, which replace the last ones scraped; the file is read (bounded
// like a scrape) and removed. A missing file means none: the process was
// killed. The life's cumulative values are then added to the worker's
// for good.
func (p *Pool) End(child string, start int, finalFile string) {
	var final snapshot
	if finalFile != "" {
		fams, err := ReadFile(finalFile, p.cfg.MaxBytes)
		switch {
		case err == nil:
			var conflicts int
			final, conflicts = newSnapshot(fams)
			p.conflicts.Add(float64(conflicts))
		case !errors.Is(err, fs.ErrNotExist):
			p.errors.Inc()
		}
		os.Remove(finalFile)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.worker(child)
	w.latest = max(w.latest, start)
	i := slices.IndexFunc(w.lives, func(l *life) bool { return l.start == start })
	if i < 0 {
		if final == nil {
			return
		}
		w.lives = append(w.lives, &life{w: w, start: start})
		i = len(w.lives) - 1
	}
	l := w.lives[i]
	if final != nil {
		l.last, l.lastSeq = final, math.MaxUint64
	}
	l.ended = true
	p.fold(l)
}

// fold adds an ended life's cumulative values to its worker's once no
// scrape of it is under way, and forgets the life.
func (p *Pool) fold(l *life) {
	if !l.ended || l.inflight > 0 {
		return
	}
	w := l.w
	p.conflicts.Add(float64(w.carried.add(l.last, true)))
	w.lives = slices.DeleteFunc(w.lives, func(o *life) bool { return o == l })
}

// job is one scrape of one life.
type job struct {
	l   *life
	seq uint64
	url string
}

// scrape scrapes every live worker's latest life once, concurrently, and
// returns the lives it reached.
func (p *Pool) scrape(ctx context.Context) map[*life]bool {
	p.mu.Lock()
	var jobs []job
	for _, w := range p.workers {
		for _, l := range w.lives {
			if !l.ended && l.url != "" && l.start == w.latest {
				p.seq++
				l.inflight++
				jobs = append(jobs, job{l: l, seq: p.seq, url: l.url})
			}
		}
	}
	p.mu.Unlock()
	snaps := make([]snapshot, len(jobs))
	errs := make([]error, len(jobs))
	conflicts := make([]int, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			var fams []*dto.MetricFamily
			if fams, errs[i] = p.fetch(ctx, j.url); errs[i] == nil {
				snaps[i], conflicts[i] = newSnapshot(fams)
			}
		})
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	reached := make(map[*life]bool, len(jobs))
	for i, j := range jobs {
		j.l.inflight--
		if errs[i] != nil {
			p.errors.Inc()
		} else {
			reached[j.l] = true
			p.conflicts.Add(float64(conflicts[i]))
			if j.seq > j.l.lastSeq {
				j.l.last, j.l.lastSeq = snaps[i], j.seq
			}
		}
		p.fold(j.l)
	}
	return reached
}

// Scrape scrapes every live worker once, concurrently, keeping their
// values for the sums: Run calls it on a schedule, so that what a
// worker counted is kept even if it dies before the next Gather.
func (p *Pool) Scrape(ctx context.Context) { p.scrape(ctx) }

// Run scrapes every live worker every interval until ctx ends.
func (p *Pool) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.scrape(ctx)
		}
	}
}

// Gather implements prometheus.Gatherer: it scrapes the live workers,
// then sums, per worker, the cumulative values of its ended lives, the
// values of its live one (gauges only when it answered this time) and,
// across workers, every series with the same name and labels. A worker
// that does not answer is skipped and counted; it never makes Gather
// fail.
func (p *Pool) Gather() ([]*dto.MetricFamily, error) {
	reached := p.scrape(context.Background())
	p.mu.Lock()
	defer p.mu.Unlock()
	sum := snapshot{}
	conflicts := 0
	for _, name := range slices.Sorted(maps.Keys(p.workers)) {
		w := p.workers[name]
		conflicts += sum.add(w.carried, true)
		for _, l := range w.lives {
			conflicts += sum.add(l.last, !reached[l])
		}
	}
	p.conflicts.Add(float64(conflicts))
	return sum.families(), nil
}

// fetch scrapes url once, bounded by the pool's timeout and byte limit.
func (p *Pool) fetch(ctx context.Context, url string) ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(format))
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	if f := expfmt.ResponseFormat(resp.Header); f.FormatType() != expfmt.TypeProtoDelim {
		return nil, fmt.Errorf("scrape %s: format %q, want %q", url, f, format)
	}
	return decode(resp.Body, p.cfg.MaxBytes)
}

// format is the exposition format between workers and the pool: the
// protobuf one keeps exemplars.
var format = expfmt.NewFormat(expfmt.TypeProtoDelim)

// ErrTooLarge is returned for a scrape or a file over the byte limit.
var ErrTooLarge = errors.New("metrics larger than the limit")

// decode reads families in the protobuf format from r, at most max bytes.
func decode(r io.Reader, max int64) ([]*dto.MetricFamily, error) {
	raw, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > max {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, max)
	}
	dec := expfmt.NewDecoder(bytes.NewReader(raw), format)
	var fams []*dto.MetricFamily
	for {
		f := &dto.MetricFamily{}
		switch err := dec.Decode(f); {
		case errors.Is(err, io.EOF):
			return fams, nil
		case err != nil:
			return nil, err
		}
		fams = append(fams, f)
	}
}

package scrape

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// WriteFile writes what g gathers to path (mode 0600) atomically: a
// reader finds the whole file or none. A worker writes its final values
// so as it stops gracefully, for the harness to read once it is gone.
func WriteFile(path string, g prometheus.Gatherer) (err error) {
	fams, gerr := g.Gather()
	if len(fams) == 0 && gerr != nil {
		return gerr
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*") // 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	enc := expfmt.NewEncoder(f, format)
	for _, mf := range fams {
		if err := enc.Encode(mf); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ReadFile reads the families WriteFile wrote to path, at most maxBytes
// (0: DefaultMaxBytes).
func ReadFile(path string, maxBytes int64) ([]*dto.MetricFamily, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fams, err := decode(f, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return fams, nil
}

package natsembed

import (
	"testing"
	"time"
)

// TestSyncSetting reads the running server's own account of its JetStream
// configuration (varz, as the monitoring endpoint reports it): by default
// every write is synced before it is acknowledged, as the package promises;
// SyncInterval replaces that with syncing at its interval.
func TestSyncSetting(t *testing.T) {
	tests := []struct {
		name       string
		interval   time.Duration
		always     bool
		wantPeriod time.Duration
	}{
		{"default", 0, true, 2 * time.Minute},
		{"interval", 5 * time.Second, false, 5 * time.Second},
	}
	for _, tc := range tests {
		srv, err := Start(Config{Dir: t.TempDir(), SyncInterval: tc.interval})
		if err != nil {
			t.Fatal(err)
		}
		v, err := srv.s.Varz(nil)
		srv.Shutdown()
		if err != nil {
			t.Fatal(err)
		}
		c := v.JetStream.Config
		switch {
		case c == nil:
			t.Errorf("%s: JetStream is not enabled", tc.name)
		case c.SyncAlways != tc.always || c.SyncInterval != tc.wantPeriod:
			t.Errorf("%s: the server syncs always=%v, every %v; want always=%v, every %v", tc.name, c.SyncAlways, c.SyncInterval, tc.always, tc.wantPeriod)
		}
	}
}

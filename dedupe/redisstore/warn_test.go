package redisstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestWarnEviction: every policy but noeviction, and a policy that could
// not be read, is warned about (the server of the tests runs noeviction).
func TestWarnEviction(t *testing.T) {
	for _, c := range []struct {
		policy string
		err    error
		want   string // "" for no warning
	}{
		{"noeviction", nil, ""},
		{"allkeys-lru", nil, "maxmemory_policy=allkeys-lru"},
		{"volatile-ttl", nil, "maxmemory_policy=volatile-ttl"},
		{"", nil, "did not report"},
		{"", errors.New("NOPERM"), "could not read"},
	} {
		var logs bytes.Buffer
		warnEviction(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), c.policy, c.err)
		if got := logs.String(); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("policy %q, error %v: logged %q, want %q", c.policy, c.err, got, c.want)
		}
	}
}

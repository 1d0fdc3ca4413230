package redisstore_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/dedupe/dedupetest"
	"github.com/eoskit/eos/dedupe/redisstore"
	"github.com/eoskit/eos/internal/testenv"
)

// client returns a client of EOS_TEST_REDIS_URL, closed when t ends.
func client(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// prefix returns a key prefix of t's own, whose keys are deleted when t
// ends.
func prefix(t *testing.T, c *redis.Client) string {
	t.Helper()
	p := testenv.Name("eos:test:") + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		for _, k := range keys(t, c, p) {
			c.Del(ctx, k)
		}
	})
	return p
}

// keys lists the keys under p.
func keys(t *testing.T, c *redis.Client, p string) []string {
	t.Helper()
	var out []string
	it := c.Scan(context.Background(), 0, p+"*", 100).Iterator()
	for it.Next(context.Background()) {
		out = append(out, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func newStore(t *testing.T, c redis.UniversalClient, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(context.Background(), c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	dedupetest.Run(t, dedupetest.Backend{
		New: func(t *testing.T, cfg dedupe.Config) dedupe.Store {
			c := client(t)
			return newStore(t, c, redisstore.Config{Dedupe: cfg, Prefix: prefix(t, c)})
		},
		Down: func(t *testing.T, cfg dedupe.Config) dedupe.Store {
			c := client(t)
			// Nothing reaches the server: no keys to clean up.
			s := newStore(t, c, redisstore.Config{Dedupe: cfg, Prefix: testenv.Name("eos:test:") + ":"})
			c.Close()
			return s
		},
	})
}

// TestKeys: every record is one key under the prefix, with a server TTL
// of at most the retention (Redis deletes it on its own).
func TestKeys(t *testing.T) {
	ctx := context.Background()
	c := client(t)
	p := prefix(t, c)
	s := newStore(t, c, redisstore.Config{Dedupe: dedupe.Config{Retention: time.Hour}, Prefix: p})
	for _, key := range []string{"k1", "k2"} {
		cl, err := s.Claim(ctx, "tenant", key, nil, time.Minute)
		if err != nil || cl.Status != dedupe.Claimed {
			t.Fatalf("claim: %+v, %v", cl, err)
		}
		if err := s.Complete(ctx, cl.Lease, []byte("r")); err != nil {
			t.Fatal(err)
		}
	}
	ks := keys(t, c, p)
	if len(ks) != 2 {
		t.Fatalf("keys under %q: %q, want 2", p, ks)
	}
	for _, k := range ks {
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > time.Hour {
			t.Fatalf("TTL of %q: %v, %v; want in (0, 1h]", k, ttl, err)
		}
	}
	// A lease longer than the retention keeps its record that long.
	cl, err := s.Claim(ctx, "tenant", "long", nil, 3*time.Hour)
	if err != nil || cl.Status != dedupe.Claimed {
		t.Fatalf("claim: %+v, %v", cl, err)
	}
	for _, k := range keys(t, c, p) {
		if strings.HasSuffix(k, "long") {
			if ttl, err := c.PTTL(ctx, k).Result(); err != nil || ttl <= 2*time.Hour {
				t.Fatalf("TTL of a record with a lease of 3h: %v, %v", ttl, err)
			}
		}
	}
}

// TestEvictionWarning: New warns when it cannot read maxmemory-policy (a
// user CONFIG is refused to), and not on this server (noeviction, as
// .ci/run starts it).
func TestEvictionWarning(t *testing.T) {
	ctx := context.Background()
	admin := client(t)
	policy, err := admin.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	newStore(t, admin, redisstore.Config{Prefix: prefix(t, admin), Logger: log})
	if got := policy["maxmemory-policy"]; got == "noeviction" && logs.Len() != 0 {
		t.Fatalf("warning with noeviction: %s", logs.String())
	} else if got != "noeviction" && !strings.Contains(logs.String(), got) {
		t.Fatalf("no warning with maxmemory-policy %s: %q", got, logs.String())
	}

	user, pass := testenv.Name("eos_test_"), testenv.Name("p")
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "on", ">"+pass, "~*", "+@all", "-config").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", user) })
	opt := admin.Options()
	opt.Username, opt.Password = user, pass
	limited := redis.NewClient(opt)
	defer limited.Close()
	logs.Reset()
	s := newStore(t, limited, redisstore.Config{Prefix: prefix(t, admin), Logger: log})
	if !strings.Contains(logs.String(), "could not read") || strings.Contains(logs.String(), pass) {
		t.Fatalf("log when CONFIG is refused: %q", logs.String())
	}
	// The store works all the same.
	if cl, err := s.Claim(ctx, "s", "k", nil, time.Minute); err != nil || cl.Status != dedupe.Claimed {
		t.Fatalf("claim: %+v, %v", cl, err)
	}
}

func TestConfig(t *testing.T) {
	for _, p := range []string{strings.Repeat("p", 129), "eos:\n", "eös:"} {
		if _, err := (redisstore.Config{Prefix: p}).WithDefaults(); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
	cfg, err := redisstore.Config{}.WithDefaults()
	if err != nil || cfg.Prefix != redisstore.DefaultPrefix || cfg.Dedupe.Retention != dedupe.DefaultRetention {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
}

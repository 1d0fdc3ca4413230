package httpidem_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/dedupe/redisstore"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/internal/testenv"
)

// storeCase is one real store the middleware's tests run on.
type storeCase struct {
	name string
	open openStore
}

// stores are the real stores: SQLite always, PostgreSQL and Redis when
// their services are set (or required).
func stores() []storeCase {
	out := []storeCase{{"sqlite", openSQLite}}
	if testenv.Wanted("EOS_TEST_POSTGRES_URL") {
		out = append(out, storeCase{"postgres", openPostgres})
	}
	if testenv.Wanted("EOS_TEST_REDIS_URL") {
		out = append(out, storeCase{"redis", openRedis})
	}
	return out
}

func storeConfig(now func() time.Time) dedupe.Config {
	return dedupe.Config{Test: eos.TestConfig{Now: now}}
}

func openSQLite(t testing.TB, now func() time.Time) (dedupe.Store, func()) {
	d := testdb.NewSQLite(t, sqlite.Config{})
	testdb.Migrate(t, d.Migrator())
	s, err := dedupe.NewSQL(d, storeConfig(now))
	if err != nil {
		t.Fatal(err)
	}
	return s, func() { d.Close() }
}

func openPostgres(t testing.TB, now func() time.Time) (dedupe.Store, func()) {
	schema, pool := engines.PostgresSchema(t)
	d, err := postgres.New(pool, postgres.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	testdb.Migrate(t, d.Migrator())
	s, err := dedupe.NewSQL(d, storeConfig(now))
	if err != nil {
		t.Fatal(err)
	}
	return s, pool.Close
}

func TestMiddleware(t *testing.T) {
	for _, s := range stores() {
		t.Run(s.name, func(t *testing.T) { runAll(t, s.open) })
	}
}

// openRedis opens a store under a fresh prefix of the test server, its
// keys deleted when t ends.
func openRedis(t testing.TB, now func() time.Time) (dedupe.Store, func()) {
	opt, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	prefix := testenv.Name("eos_httpidem_") + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, err := c.Keys(ctx, prefix+"*").Result(); err == nil && len(keys) > 0 {
			c.Del(ctx, keys...)
		}
		c.Close()
	})
	s, err := redisstore.New(context.Background(), c, redisstore.Config{Dedupe: storeConfig(now), Prefix: prefix,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s, func() { c.Close() } // a closed client fails every call
}

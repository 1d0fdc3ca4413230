package postgres_test

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/driver/postgres"
	"github.com/eoskit/eos/internal/testenv"
)

// hostileIDs are valid message ids (UTF-8, no control characters) that
// break naive quoting.
var hostileIDs = []string{
	`\', int8send(1), now()); DROP TABLE canary; --`,
	`plain`, `it's`, `back\slash`, `\`, `\\`, `\'`, `'\`, `\''`, `''`, `\x41`, `\101`, `\u0041`, `$$`, `$q$`,
	"ünï ✓ 日本 🙂 é\\é'é",
}

// The literal BeginClaim writes reads back as exactly the same string on the
// server, whatever standard_conforming_strings and the client encoding say:
// the server's own parser is the oracle.
func TestLiteralRoundTrip(t *testing.T) {
	ctx := context.Background()
	conn := admin(t)
	for _, setting := range []string{
		"SET standard_conforming_strings = on; SET client_encoding = 'UTF8'",
		"SET standard_conforming_strings = off; SET client_encoding = 'UTF8'",
		"SET standard_conforming_strings = off; SET client_encoding = 'SJIS'",
		"SET standard_conforming_strings = on; SET client_encoding = 'SJIS'",
		"SET standard_conforming_strings = off; SET client_encoding = 'LATIN1'",
	} {
		if _, err := conn.PgConn().Exec(ctx, setting).ReadAll(); err != nil {
			t.Fatalf("%s: %v", setting, err)
		}
		for _, s := range hostileIDs {
			lit := postgres.Literal(s)
			// Simple protocol: the literal is parsed exactly as BeginClaim's.
			res, err := conn.PgConn().Exec(ctx, "SELECT encode(convert_to("+lit+", 'UTF8'), 'hex')").ReadAll()
			if err != nil {
				t.Errorf("%s: literal %s of %q: %v", setting, lit, s, err)
				continue
			}
			if got := string(res[0].Rows[0][0]); got != hex.EncodeToString([]byte(s)) {
				b, _ := hex.DecodeString(got)
				t.Errorf("%s: literal %s of %q reads back as %q", setting, lit, s, b)
			}
		}
	}
}

// A connection on which standard_conforming_strings is off (a handler's SET,
// a role's setting) neither runs SQL from an id nor claims it under another
// string than the parameterized path stores.
func TestBeginClaimConformingStringsOff(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	must(t, err)
	cfg.MaxConns = 1 // every statement below runs on the one connection
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	must(t, err)
	t.Cleanup(pool.Close)
	d, err := postgres.New(pool, postgres.Config{Schema: schema})
	must(t, err)
	migrate(t, d)
	_, err = pool.Exec(ctx, "CREATE TABLE canary (x int)")
	must(t, err)

	begin := func(ids ...string) {
		t.Helper()
		tx, ok, err := d.BeginClaim(ctx, "c", time.Now(), claims(ids...))
		must(t, err)
		if !ok {
			t.Fatalf("BeginClaim of new ids %q declined", ids)
		}
		must(t, d.Commit(ctx, tx))
	}
	begin("first") // on a connection with the default setting
	_, err = pool.Exec(ctx, "SET standard_conforming_strings = off")
	must(t, err)
	var taken []string
	for _, id := range hostileIDs {
		tx, ok, err := d.BeginClaim(ctx, "c", time.Now(), claims(id))
		if ascii := !strings.ContainsFunc(id, func(r rune) bool { return r >= utf8.RuneSelf }); err != nil || ok != ascii {
			t.Errorf("BeginClaim of new id %q: ok %v, %v; want ok only for ASCII", id, ok, err)
		}
		if !ok {
			continue
		}
		taken = append(taken, id)
		must(t, d.Commit(ctx, tx))
		var canary bool
		must(t, pool.QueryRow(ctx, "SELECT to_regclass('canary') IS NOT NULL").Scan(&canary))
		if !canary {
			t.Fatalf("id %q ran SQL: table canary was dropped", id)
		}
	}
	// Every id is claimed under itself: the ordinary claim sees it as known.
	inTx(t, driver.Driver[pgx.Tx](d), func(ctx context.Context, ex driver.Executor) error {
		fresh, err := ex.InboxClaim(ctx, "c", time.Now(), claims(taken...))
		if err != nil {
			return err
		}
		for i, f := range fresh {
			if f {
				t.Errorf("id %q was claimed under another string", taken[i])
			}
		}
		return nil
	})
}

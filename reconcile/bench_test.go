package reconcile_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/driver"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/reconcile"
	"github.com/eoskit/eos/transport/kafka"
)

// benchIDs is the size of the benchmarks' source and inbox.
const benchIDs = 100_000

// BenchmarkReconcile reconciles a producer table of benchIDs ids with as
// many claims (all applied), pages of DefaultPageSize: a whole run per
// iteration.
func BenchmarkReconcile(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		e := testdb.SQLite(b)
		benchReconcile(b, e.Driver, sqliteDB(e))
	})
	b.Run("postgres", func(b *testing.B) {
		s := pgxStore(b)
		benchReconcile(b, s.d, s.db)
	})
}

func benchReconcile[TTx any](b *testing.B, d driver.Driver[TTx], db *sql.DB) {
	ctx := context.Background()
	at := time.Now().Add(-time.Hour)
	if _, err := db.ExecContext(ctx, "CREATE TABLE sent (id TEXT NOT NULL PRIMARY KEY, at BIGINT NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	fp := make([]byte, eos.FingerprintSize)
	for start := 0; start < benchIDs; start += 1000 {
		var values strings.Builder
		claims := make([]driver.Claim, 0, 1000)
		for i := start; i < start+1000; i++ {
			id := eos.NewIDAt(at.Add(time.Duration(i) * time.Millisecond))
			if i > start {
				values.WriteByte(',')
			}
			fmt.Fprintf(&values, "('%s', %d)", id, at.UnixMicro())
			claims = append(claims, driver.Claim{ID: id, Fingerprint: fp})
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO sent VALUES "+values.String()); err != nil {
			b.Fatal(err)
		}
		tx, err := d.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Executor(tx).InboxClaim(ctx, "c", at.Add(time.Minute), claims); err != nil {
			b.Fatal(err)
		}
		if err := d.Commit(ctx, tx); err != nil {
			b.Fatal(err)
		}
	}
	r, err := reconcile.New(d, reconcile.SQLSource{DB: db, Query: "SELECT id, at FROM sent WHERE id > $1 ORDER BY id LIMIT $2"},
		reconcile.Config{Consumer: "c", PartialAfter: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := r.Run(ctx)
		if err != nil || !rep.OK() || rep.Applied != benchIDs || rep.ClaimsChecked != benchIDs {
			b.Fatalf("%+v, %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchIDs, "ns/id")
}

// BenchmarkKafkaSourceScan scans a kfake topic of benchIDs records with
// ids on four partitions, pages of DefaultPageSize: a whole scan per
// iteration.
func BenchmarkKafkaSourceScan(b *testing.B) {
	k := newKafka(b)
	cl := k.client(b, kgo.ProducerLinger(0))
	topic := k.topic(b, 4)
	ctx := context.Background()
	for i := range benchIDs {
		r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: make([]byte, 100),
			Headers: []kgo.RecordHeader{{Key: kafka.HeaderID, Value: []byte(eos.NewID())}}}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	src := reconcile.KafkaSource{Client: cl, Topic: topic}
	b.ResetTimer()
	for b.Loop() {
		n := 0
		err := src.Scan(ctx, reconcile.DefaultPageSize, func(es []reconcile.Entry) error {
			n += len(es)
			return nil
		})
		if err != nil || n != benchIDs {
			b.Fatalf("%d entries, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchIDs, "ns/entry")
}

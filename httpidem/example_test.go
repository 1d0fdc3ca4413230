package httpidem_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/driver/sqlite"
	"github.com/eoskit/eos/httpidem"
	"github.com/eoskit/eos/outbox"
)

// A charge endpoint whose ledger row, outbox message and Idempotency-Key
// commit in one SQLite transaction: a retry gets the stored answer, and
// neither the row nor the message is ever written twice.
func ExampleNewTx() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "httpidem-example")
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(ctx, filepath.Join(dir, "app.db"), sqlite.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrator().Up(ctx); err != nil { // eos's tables, the keys' included
		log.Fatal(err)
	}
	if _, err := db.DB().ExecContext(ctx, "CREATE TABLE charges (id TEXT PRIMARY KEY, amount INTEGER NOT NULL)"); err != nil {
		log.Fatal(err)
	}
	keys, err := dedupe.NewSQL(db, dedupe.Config{})
	if err != nil {
		log.Fatal(err)
	}
	ob, err := outbox.New(db, outbox.Config{})
	if err != nil {
		log.Fatal(err)
	}
	idem, err := httpidem.NewTx(keys, db, httpidem.Config{
		Scope:    func(r *http.Request) (string, error) { return "tenant-1 " + r.URL.Path, nil }, // from authentication, in real life
		Required: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	charge := func(w http.ResponseWriter, r *http.Request, tx *sql.Tx) error {
		var in struct{ Amount int64 }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest) // stored too: the same request stays bad
			return nil
		}
		id := "ch_" + eos.NewID()
		if _, err := tx.ExecContext(r.Context(), "INSERT INTO charges (id, amount) VALUES (?, ?)", id, in.Amount); err != nil {
			return err // rolled back, key released: the client may retry
		}
		msg := eos.Message{ID: id, Key: id, Payload: []byte(fmt.Sprint(in.Amount))}
		if err := ob.Enqueue(r.Context(), tx, "charges", msg); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		return json.NewEncoder(w).Encode(map[string]any{"amount": in.Amount, "status": "succeeded"})
	}
	srv := httptest.NewServer(idem.Handler(charge))
	defer srv.Close()

	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/charges", strings.NewReader(`{"amount": 42}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", `"order-1001"`)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d replayed=%q %s", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), body)
	}
	var charges, messages int
	db.DB().QueryRowContext(ctx, "SELECT count(*) FROM charges").Scan(&charges)
	db.DB().QueryRowContext(ctx, "SELECT count(*) FROM eos_outbox").Scan(&messages)
	fmt.Println("charges:", charges, "outbox messages:", messages)
	// Output:
	// 201 replayed="" {"amount":42,"status":"succeeded"}
	// 201 replayed="true" {"amount":42,"status":"succeeded"}
	// charges: 1 outbox messages: 1
}

package callonce_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/eoskit/eos/callonce"
	"github.com/eoskit/eos/dedupe"
	"github.com/eoskit/eos/driver/sqlite"
)

// An email API called once per message: the second Do, a redelivery,
// gets the recorded answer and makes no request.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "callonce-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	drv, err := sqlite.Open(ctx, filepath.Join(dir, "eos.db"), sqlite.Config{})
	if err != nil {
		panic(err)
	}
	defer drv.Close()
	if _, err := drv.Migrator().Up(ctx); err != nil {
		panic(err)
	}
	store, err := dedupe.NewSQL(drv, dedupe.Config{})
	if err != nil {
		panic(err)
	}
	caller, err := callonce.New(store, callonce.Config{})
	if err != nil {
		panic(err)
	}

	requests := 0
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		fmt.Fprintf(w, "queued under %s", r.Header.Get("Idempotency-Key"))
	}))
	defer api.Close()

	send := func(ctx context.Context, key string) callonce.Outcome {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, api.URL+"/v1/emails", strings.NewReader(`{"to":"a@example.com"}`))
		if err != nil {
			return callonce.Failed(nil, err.Error())
		}
		callonce.SetHeader(req, key)
		resp, err := api.Client().Do(req)
		if err != nil {
			return callonce.Unknown(err) // it may have been sent
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		switch {
		case err != nil, resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests:
			return callonce.Unknown(fmt.Errorf("status %d, %v", resp.StatusCode, err))
		case resp.StatusCode >= 400:
			return callonce.Failed(body, resp.Status)
		}
		return callonce.Done(body)
	}
	for range 2 {
		r, err := caller.Do(ctx, "emails", "msg-0001", []byte("welcome"), send)
		fmt.Printf("%s %q replayed=%v err=%v\n", r.Status, r.Value, r.Replayed, err)
	}
	fmt.Println("requests:", requests)
	// Output:
	// succeeded "queued under \"msg-0001\"" replayed=false err=<nil>
	// succeeded "queued under \"msg-0001\"" replayed=true err=<nil>
	// requests: 1
}

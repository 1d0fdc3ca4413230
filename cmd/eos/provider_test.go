package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eoskit/eos/internal/testdb/engines"
	"github.com/eoskit/eos/internal/testenv"
)

func TestProviderFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"provider"}, "--store: required"},
		{[]string{"provider", "--store", "mysql://h/db"}, "want sqlite"},
		{[]string{"provider", "--store", "sqlite:///x.db", "--addr", "0.0.0.0:0"}, "not a loopback address"},
		{[]string{"provider", "--store", "redis://u:hunter2@127.0.0.1:1/0"}, "--store"},
	} {
		r := runCmd(t, time.Minute, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("eos %s: exit %d, stderr %q; want %d naming %q", strings.Join(c.args, " "), r.code, r.stderr, exitUsage, c.want)
		}
		if strings.Contains(r.stderr+r.stdout, "hunter2") {
			t.Errorf("eos %s printed the password", strings.Join(c.args, " "))
		}
	}
}

// TestProvider runs eos provider on each store and sends it the requests
// of the draft's rules.
func TestProvider(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testProvider(t, "sqlite://"+filepath.Join(t.TempDir(), "provider.db"))
	})
	if testenv.Wanted("EOS_TEST_POSTGRES_URL") {
		t.Run("postgres", func(t *testing.T) {
			schema, _ := engines.PostgresSchema(t)
			u := testenv.PostgresURL(t)
			sep := "?"
			if strings.Contains(u, "?") {
				sep = "&"
			}
			testProvider(t, u+sep+"search_path="+schema)
		})
	}
	if testenv.Wanted("EOS_TEST_REDIS_URL") {
		t.Run("redis", func(t *testing.T) { testProvider(t, testenv.RedisURL(t)) })
	}
}

func testProvider(t *testing.T, store string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := newWatch(`POST (http://\S+)/v1/charges`)
	var errs strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"provider", "--addr", "127.0.0.1:0", "--store", store}, strings.NewReader(""), out, &errs)
	}()
	base := await(ctx, t, out, 0, done, "the provider's address")
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("exit %d; stderr:\n%s", code, errs.String())
		}
	}()
	order := testenv.Name("o")
	key := `"` + order + `"`
	charge := `{"order_id":"` + order + `","account":"a1","amount":100}`
	post := func(key, body string) (int, http.Header, string) {
		t.Helper()
		r, _ := http.NewRequest(http.MethodPost, base+"/v1/charges", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if key != "" {
			r.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	st, _, first := post(key, charge)
	var res struct {
		ChargeID string `json:"charge_id"`
	}
	if err := json.Unmarshal([]byte(first), &res); st != 201 || err != nil || !strings.HasPrefix(res.ChargeID, "ch_") {
		t.Fatalf("first charge: %d %s", st, first)
	}
	if st, h, again := post(key, charge); st != 201 || again != first || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %v %s; want the first answer replayed", st, h, again)
	}
	if st, h, again := post(order, charge); st != 201 || again != first || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry with the key unquoted (lenient): %d %s", st, again)
	}
	if st, h, body := post(key, strings.Replace(charge, "100", "999", 1)); st != 422 || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("another body under the key: %d %s", st, body)
	}
	if st, _, body := post("", charge); st != 400 || !strings.Contains(body, "ProblemKeyMissing") {
		t.Fatalf("no key: %d %s", st, body)
	}
	resp, err := http.Get(base + "/v1/charges")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Charges []struct {
			OrderID string `json:"order_id"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range list.Charges {
		if c.OrderID == order {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d charges of order %s, want 1", n, order)
	}
}

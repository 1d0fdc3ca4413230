package serve_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eoskit/eos/metrics"
	"github.com/eoskit/eos/serve"
)

// Mount the operator endpoint under /eos/ of a program's own server,
// with a bearer token and a readiness check.
func Example() {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg, metrics.Config{}); err != nil { // feed it with InboxHook, RelayHook, WatchOutbox…
		panic(err)
	}
	h, err := serve.New(serve.Config{
		Gatherer: reg,
		Token:    "a-long-random-token",
		Checks:   []serve.Check{{Name: "store", Func: func(context.Context) error { return nil }}}, // e.g. db.PingContext
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/eos/", http.StripPrefix("/eos", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, path := range []string{"/eos/healthz", "/eos/readyz"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		fmt.Println(path, res.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/eos/readyz", nil)
	req.Header.Set("Authorization", "Bearer a-long-random-token")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println("/eos/readyz with the token", res.StatusCode)
	// Output:
	// /eos/healthz 200
	// /eos/readyz 401
	// /eos/readyz with the token 200
}

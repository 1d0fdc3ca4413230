package httpidem

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/eoskit/eos"
)

func TestConfigWithDefaults(t *testing.T) {
	scope := func(*http.Request) (string, error) { return "t", nil }
	c, err := Config{Scope: scope, Methods: []string{"post"}, Policy: Policy{Headers: []string{"etag"}}}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Lease != DefaultLease || c.MaxBody != DefaultMaxBody || c.MaxResult != DefaultMaxResult || c.Wait != 0 ||
		!slices.Equal(c.Methods, []string{"POST"}) || !slices.Equal(c.Policy.Headers, []string{"Content-Type", "Location", "Etag"}) ||
		c.Policy.Store == nil || c.Route == nil || c.Logger == nil {
		t.Fatalf("defaults: %+v", c)
	}
	for name, bad := range map[string]Config{
		"no scope":       {},
		"negative lease": {Scope: scope, Lease: -1},
		"tiny lease":     {Scope: scope, Lease: time.Millisecond},
		"negative wait":  {Scope: scope, Wait: -1},
		"negative body":  {Scope: scope, MaxBody: -1},
		"huge result":    {Scope: scope, MaxResult: 65 << 20},
		"set-cookie":     {Scope: scope, Policy: Policy{Headers: []string{"set-cookie"}}},
		"not a hook":     {Scope: scope, Hooks: []Hook{42}},
	} {
		var ce *eos.ConfigError
		if _, err := bad.WithDefaults(); !errors.As(err, &ce) || !errors.Is(err, eos.ErrInvalidConfig) {
			t.Errorf("%s: err %v, want a *eos.ConfigError", name, err)
		}
	}
	if _, err := New(nil, Config{Scope: scope}); !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("New(nil store): %v", err)
	}
	for status, want := range map[int]bool{200: true, 201: true, 400: true, 404: true, 422: true, 429: false, 500: false, 503: false} {
		if StoreStatus(status) != want {
			t.Errorf("StoreStatus(%d) = %v", status, !want)
		}
	}
}

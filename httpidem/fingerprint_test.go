package httpidem

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

func TestFingerprint(t *testing.T) {
	jsonH := http.Header{"Content-Type": {"application/json"}}
	fp := func(method, route, body string, h http.Header, names ...string) []byte {
		return Fingerprint(method, route, []byte(body), h, names)
	}
	base := fp("POST", "/v1/charges", `{"a":1,"b":[true,null,"x"]}`, jsonH)
	if len(base) != 2+32 || string(base[:2]) != "v1" {
		t.Fatalf("fingerprint %x: want \"v1\" and a SHA-256", base)
	}
	same := map[string][]byte{
		"keys reordered and spaced": fp("POST", "/v1/charges", " {\"b\": [true, null, \"\\u0078\"], \"a\": 1}\n", jsonH),
		"json suffix type":          fp("POST", "/v1/charges", `{"b":[true,null,"x"],"a":1}`, http.Header{"Content-Type": {"application/merge-patch+json; charset=utf-8"}}),
	}
	for name, got := range same {
		if !bytes.Equal(got, base) {
			t.Errorf("%s: fingerprint differs", name)
		}
	}
	h := http.Header{"Content-Type": {"application/json"}, "Api-Version": {"2"}}
	different := map[string][]byte{
		"method":             fp("PATCH", "/v1/charges", `{"a":1,"b":[true,null,"x"]}`, jsonH),
		"route":              fp("POST", "/v1/refunds", `{"a":1,"b":[true,null,"x"]}`, jsonH),
		"value":              fp("POST", "/v1/charges", `{"a":2,"b":[true,null,"x"]}`, jsonH),
		"number spelling":    fp("POST", "/v1/charges", `{"a":1.0,"b":[true,null,"x"]}`, jsonH),
		"not json type":      fp("POST", "/v1/charges", `{"a":1,"b":[true,null,"x"]}`, http.Header{"Content-Type": {"text/plain"}}),
		"fingerprint header": fp("POST", "/v1/charges", `{"a":1,"b":[true,null,"x"]}`, h, "api-version"),
	}
	for name, got := range different {
		if bytes.Equal(got, base) {
			t.Errorf("%s: fingerprint is the same", name)
		}
	}
	// Invalid JSON is hashed raw: two different invalid bodies differ, and
	// raw bytes never meet a canonical form.
	if bytes.Equal(fp("POST", "/", `{"a":1`, jsonH), fp("POST", "/", `{"a": 1`, jsonH)) {
		t.Error("two different invalid JSON bodies have one fingerprint")
	}
	if bytes.Equal(fp("POST", "/", `{"a":1} x`, jsonH), fp("POST", "/", `{"a":1}`, jsonH)) {
		t.Error("trailing data after a JSON value is ignored")
	}
	if bytes.Equal(fp("POST", "/", "\"\xff\"", jsonH), fp("POST", "/", "\"\xfe\"", jsonH)) {
		t.Error("invalid UTF-8 in JSON strings is folded")
	}
	// Length prefixes: moving bytes between fields changes the fingerprint.
	if bytes.Equal(fp("POST", "/ab", "c", nil), fp("POST", "/a", "bc", nil)) {
		t.Error("route and body are not delimited")
	}
	a := fp("POST", "/", "", http.Header{"X-A": {"1", "2"}}, "X-A")
	b := fp("POST", "/", "", http.Header{"X-A": {"12"}}, "X-A")
	if bytes.Equal(a, b) {
		t.Error("header values are not delimited")
	}
}

func TestResponseRoundTrip(t *testing.T) {
	in := response{status: 201, header: http.Header{"Content-Type": {"application/json"}, "Location": {"/v1/charges/ch_1"}, "X-Multi": {"a", "b"}},
		body: []byte("{\"id\":\"ch_1\"}\n\x00\xff")}
	out, err := decodeResponse(in.encode())
	if err != nil {
		t.Fatal(err)
	}
	if out.status != in.status || !bytes.Equal(out.body, in.body) || len(out.header) != 3 ||
		out.header.Get("Location") != "/v1/charges/ch_1" || len(out.header["X-Multi"]) != 2 || out.header["X-Multi"][1] != "b" {
		t.Fatalf("round trip: %+v", out)
	}
	empty, err := decodeResponse(response{status: 204, header: http.Header{}}.encode())
	if err != nil || empty.status != 204 || len(empty.body) != 0 {
		t.Fatalf("empty: %+v, %v", empty, err)
	}
	for _, bad := range [][]byte{nil, {9, 0, 200}, {1, 0}, {1, 0, 200, 5, 1}, {1, 0, 200, 1, 200, 'a'}} {
		if _, err := decodeResponse(bad); err == nil {
			t.Errorf("decodeResponse(%x): no error", bad)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[int64]int64{0: 1, 1: 1, 999_999_999: 1, 1_000_000_000: 1, 1_000_000_001: 2, 59_500_000_000: 60} {
		if got := retryAfterSeconds(durationNS(d)); got != want {
			t.Errorf("retryAfterSeconds(%dns) = %d, want %d", d, got, want)
		}
	}
}

func durationNS(n int64) time.Duration { return time.Duration(n) }

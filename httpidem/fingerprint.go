package httpidem

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"hash"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// fingerprintVersion prefixes every fingerprint. A change to what is
// hashed, or how, takes a new version: a stored "v1" fingerprint then
// differs from every new one, so keys claimed before the change answer
// 422 instead of replaying a response to a request hashed another way.
const fingerprintVersion = "v1"

// Fingerprint is what tells two requests under one key apart: a versioned
// SHA-256 over the method, the route, the body and the values of the named
// headers (in the order given; names are case-insensitive). A JSON body
// (Content-Type application/json or …+json) is hashed in canonical form,
// so that a client re-encoding the same document (key order, spacing,
// escapes) is still the same request; a body that is not valid JSON is
// hashed as its bytes. Every part is length-prefixed, so no two
// different requests share their hashed bytes.
func Fingerprint(method, route string, body []byte, h http.Header, headers []string) []byte {
	d := sha256.New()
	field(d, []byte(method))
	field(d, []byte(route))
	if c, ok := canonicalJSON(h.Get("Content-Type"), body); ok {
		field(d, []byte{'j'})
		field(d, c)
	} else {
		field(d, []byte{'r'})
		field(d, body)
	}
	for _, name := range headers {
		vs := h.Values(name)
		field(d, []byte(http.CanonicalHeaderKey(name)))
		field(d, binary.BigEndian.AppendUint64(nil, uint64(len(vs))))
		for _, v := range vs {
			field(d, []byte(v))
		}
	}
	return d.Sum([]byte(fingerprintVersion))
}

func field(d hash.Hash, b []byte) {
	d.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
	d.Write(b)
}

// canonicalJSON returns body re-encoded with sorted object keys, no
// insignificant space and numbers as written, when contentType is JSON
// and body is one valid JSON value in valid UTF-8 (the decoder would
// replace invalid bytes, making two different bodies one).
func canonicalJSON(contentType string, body []byte) ([]byte, bool) {
	if !isJSON(contentType) || !utf8.Valid(body) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // trailing data
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, false
	}
	return bytes.TrimSuffix(out.Bytes(), []byte{'\n'}), true
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

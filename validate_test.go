package eos_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/eoskit/eos"
)

// validMessage returns a message every rule accepts; cases change one part.
func validMessage() eos.Message {
	return eos.Message{
		ID:      "0190a5f2-6c1e-7b3a-9f00-0123456789ab",
		Key:     "order-42",
		Payload: []byte(`{"total":12}`),
		Headers: map[string]string{"Content-Type": "application/json"},
	}
}

func TestLimitsValidate(t *testing.T) {
	type tc struct {
		name   string
		limits eos.Limits
		mutate func(m *eos.Message)
		// For refused cases: the field, header name and a fragment of the
		// error text. wantField == "" means the message must be accepted.
		wantField eos.Field
		wantName  string
		wantText  string
	}
	cases := []tc{
		// Baseline.
		{name: "valid message", mutate: func(m *eos.Message) {}},
		{name: "zero message with id only", mutate: func(m *eos.Message) { *m = eos.Message{ID: "x"} }},

		// ID.
		{name: "empty id", mutate: func(m *eos.Message) { m.ID = "" },
			wantField: eos.FieldID, wantText: "id: empty"},
		{name: "id of 255 bytes", mutate: func(m *eos.Message) { m.ID = strings.Repeat("a", 255) }},
		{name: "id of 255 bytes multibyte", mutate: func(m *eos.Message) { m.ID = strings.Repeat("é", 127) + "a" }},
		{name: "id of 256 bytes", mutate: func(m *eos.Message) { m.ID = strings.Repeat("a", 256) },
			wantField: eos.FieldID, wantText: "longer than 255 bytes (256)"},
		{name: "id of 256 bytes multibyte", mutate: func(m *eos.Message) { m.ID = strings.Repeat("é", 128) },
			wantField: eos.FieldID, wantText: "longer than 255 bytes (256)"},
		{name: "id invalid utf-8", mutate: func(m *eos.Message) { m.ID = "abc\xff" },
			wantField: eos.FieldID, wantText: "not valid UTF-8"},
		{name: "id truncated utf-8", mutate: func(m *eos.Message) { m.ID = "caf\xc3" },
			wantField: eos.FieldID, wantText: "not valid UTF-8"},
		{name: "id surrogate half", mutate: func(m *eos.Message) { m.ID = "a\xed\xa0\x80" },
			wantField: eos.FieldID, wantText: "not valid UTF-8"},
		{name: "id NUL", mutate: func(m *eos.Message) { m.ID = "a\x00b" },
			wantField: eos.FieldID, wantText: "control character at byte 1"},
		{name: "id newline", mutate: func(m *eos.Message) { m.ID = "ab\n" },
			wantField: eos.FieldID, wantText: "control character at byte 2"},
		{name: "id tab", mutate: func(m *eos.Message) { m.ID = "\tab" },
			wantField: eos.FieldID, wantText: "control character at byte 0"},
		{name: "id DEL", mutate: func(m *eos.Message) { m.ID = "abc\x7f" },
			wantField: eos.FieldID, wantText: "control character at byte 3"},
		{name: "id C1 NEL U+0085", mutate: func(m *eos.Message) { m.ID = "ab\u0085" },
			wantField: eos.FieldID, wantText: "control character at byte 2"},
		{name: "id C1 U+009F", mutate: func(m *eos.Message) { m.ID = "\u009f" },
			wantField: eos.FieldID, wantText: "control character at byte 0"},
		{name: "id U+00A0 allowed", mutate: func(m *eos.Message) { m.ID = "a\u00a0b" }},
		{name: "id non-ASCII allowed", mutate: func(m *eos.Message) { m.ID = "commande-é-日本-🙂" }},
		{name: "id space allowed", mutate: func(m *eos.Message) { m.ID = "a b" }},

		// Key.
		{name: "empty key", mutate: func(m *eos.Message) { m.Key = "" }},
		{name: "key of 255 bytes", mutate: func(m *eos.Message) { m.Key = strings.Repeat("k", 255) }},
		{name: "key of 256 bytes", mutate: func(m *eos.Message) { m.Key = strings.Repeat("k", 256) },
			wantField: eos.FieldKey, wantText: "key: longer than 255 bytes (256)"},
		{name: "key invalid utf-8", mutate: func(m *eos.Message) { m.Key = "\x80" },
			wantField: eos.FieldKey, wantText: "key: not valid UTF-8"},
		{name: "key NUL", mutate: func(m *eos.Message) { m.Key = "\x00" },
			wantField: eos.FieldKey, wantText: "key: control character at byte 0"},
		{name: "key CR", mutate: func(m *eos.Message) { m.Key = "k\r" },
			wantField: eos.FieldKey, wantText: "key: control character at byte 1"},
		{name: "key DEL", mutate: func(m *eos.Message) { m.Key = "\x7f" },
			wantField: eos.FieldKey, wantText: "key: control character at byte 0"},
		{name: "key C1 NEL", mutate: func(m *eos.Message) { m.Key = "k\u0085" },
			wantField: eos.FieldKey, wantText: "key: control character at byte 1"},
		{name: "key non-ASCII allowed", mutate: func(m *eos.Message) { m.Key = "clé" }},
		{name: "id checked before key", mutate: func(m *eos.Message) { m.ID = ""; m.Key = "\x00" },
			wantField: eos.FieldID, wantText: "id: empty"},

		// Subject.
		{name: "empty subject", mutate: func(m *eos.Message) { m.Subject = "" }},
		{name: "nats subject", mutate: func(m *eos.Message) { m.Subject = "orders.eu.created" }},
		{name: "subject of 255 bytes", mutate: func(m *eos.Message) { m.Subject = strings.Repeat("s", 255) }},
		{name: "subject of 256 bytes", mutate: func(m *eos.Message) { m.Subject = strings.Repeat("s", 256) },
			wantField: eos.FieldSubject, wantText: "subject: longer than 255 bytes (256)"},
		{name: "subject invalid utf-8", mutate: func(m *eos.Message) { m.Subject = "orders.\xff" },
			wantField: eos.FieldSubject, wantText: "subject: not valid UTF-8"},
		{name: "subject NUL", mutate: func(m *eos.Message) { m.Subject = "orders\x00" },
			wantField: eos.FieldSubject, wantText: "subject: control character at byte 6"},
		{name: "subject LF", mutate: func(m *eos.Message) { m.Subject = "a\nb" },
			wantField: eos.FieldSubject, wantText: "subject: control character at byte 1"},
		{name: "subject C1 NEL", mutate: func(m *eos.Message) { m.Subject = "\u0085" },
			wantField: eos.FieldSubject, wantText: "subject: control character at byte 0"},
		{name: "subject non-ASCII allowed", mutate: func(m *eos.Message) { m.Subject = "commandes.créées" }},
		{name: "key checked before subject", mutate: func(m *eos.Message) { m.Key = "\x00"; m.Subject = "\x00" },
			wantField: eos.FieldKey, wantText: "key: control character"},
		{name: "subject checked before payload", limits: eos.Limits{MaxPayload: 1},
			mutate:    func(m *eos.Message) { m.Subject = "\x7f"; m.Payload = []byte("12") },
			wantField: eos.FieldSubject, wantText: "subject: control character"},

		// Payload.
		{name: "nil payload", mutate: func(m *eos.Message) { m.Payload = nil }},
		{name: "payload at default max", mutate: func(m *eos.Message) { m.Payload = make([]byte, eos.DefaultMaxPayload) }},
		{name: "payload over default max", mutate: func(m *eos.Message) { m.Payload = make([]byte, eos.DefaultMaxPayload+1) },
			wantField: eos.FieldPayload, wantText: "payload: larger than the maximum of 1048576 bytes (1048577)"},
		{name: "payload at custom max", limits: eos.Limits{MaxPayload: 10},
			mutate: func(m *eos.Message) { m.Payload = make([]byte, 10) }},
		{name: "payload over custom max", limits: eos.Limits{MaxPayload: 10},
			mutate:    func(m *eos.Message) { m.Payload = make([]byte, 11) },
			wantField: eos.FieldPayload, wantText: "larger than the maximum of 10 bytes (11)"},
		{name: "custom max above default", limits: eos.Limits{MaxPayload: 2 << 20},
			mutate: func(m *eos.Message) { m.Payload = make([]byte, eos.DefaultMaxPayload+1) }},
		{name: "custom max of 1 byte refuses 2", limits: eos.Limits{MaxPayload: 1},
			mutate:    func(m *eos.Message) { m.Payload = []byte("ab") },
			wantField: eos.FieldPayload, wantText: "maximum of 1 bytes (2)"},

		// Header names.
		{name: "nil headers", mutate: func(m *eos.Message) { m.Headers = nil }},
		{name: "header name X-Request-Id", mutate: func(m *eos.Message) { m.Headers = map[string]string{"X-Request-Id": "r1"} }},
		{name: "header name all tchar symbols", mutate: func(m *eos.Message) { m.Headers = map[string]string{"a!#$%&'*+-.^_`|~9": "v"} }},
		{name: "header name of 256 bytes", mutate: func(m *eos.Message) { m.Headers = map[string]string{strings.Repeat("h", 256): "v"} }},
		{name: "header name of 257 bytes", mutate: func(m *eos.Message) { m.Headers = map[string]string{strings.Repeat("h", 257): "v"} },
			wantField: eos.FieldHeader, wantName: strings.Repeat("h", 257), wantText: "name longer than 256 bytes"},
		{name: "header name empty", mutate: func(m *eos.Message) { m.Headers = map[string]string{"": "v"} },
			wantField: eos.FieldHeader, wantName: "", wantText: "header: empty name"},
		{name: "header name with space", mutate: func(m *eos.Message) { m.Headers = map[string]string{"X Id": "v"} },
			wantField: eos.FieldHeader, wantName: "X Id", wantText: `header "X Id": name has invalid character ' ' at byte 1`},
		{name: "header name with colon", mutate: func(m *eos.Message) { m.Headers = map[string]string{"X-Id:": "v"} },
			wantField: eos.FieldHeader, wantName: "X-Id:", wantText: "name has invalid character ':' at byte 4"},
		{name: "header name non-ASCII", mutate: func(m *eos.Message) { m.Headers = map[string]string{"Clé": "v"} },
			wantField: eos.FieldHeader, wantName: "Clé", wantText: "name has invalid character"},
		{name: "header name with separator", mutate: func(m *eos.Message) { m.Headers = map[string]string{"a/b": "v"} },
			wantField: eos.FieldHeader, wantName: "a/b", wantText: "name has invalid character '/' at byte 1"},
		{name: "header name with NUL", mutate: func(m *eos.Message) { m.Headers = map[string]string{"a\x00": "v"} },
			wantField: eos.FieldHeader, wantName: "a\x00", wantText: "name has invalid character"},

		// Header values.
		{name: "header value empty", mutate: func(m *eos.Message) { m.Headers = map[string]string{"X": ""} }},
		{name: "header value with tab", mutate: func(m *eos.Message) { m.Headers = map[string]string{"X": "a\tb"} }},
		{name: "header value with CRLF", mutate: func(m *eos.Message) { m.Headers = map[string]string{"X": "a\r\nInjected: 1"} },
			wantField: eos.FieldHeader, wantName: "X", wantText: `header "X": value has control character at byte 1`},
		{name: "header value with LF", mutate: func(m *eos.Message) { m.Headers = map[string]string{"X": "ab\n"} },
			wantField: eos.FieldHeader, wantName: "X", wantText: "value has control character at byte 2"},
		{name: "header value with NUL", mutate: func(m *eos.Message) { m.Headers = map[string]string{"X": "\x00"} },
			wantField: eos.FieldHeader, wantName: "X", wantText: "value has control character at byte 0"},
		{name: "header value with DEL", mutate: func(m *eos.Message) { m.Headers = map[string]string{"X": "a\x7f"} },
			wantField: eos.FieldHeader, wantName: "X", wantText: "value has control character at byte 1"},
		{name: "header value of 8 KiB", mutate: func(m *eos.Message) { m.Headers = map[string]string{"X": strings.Repeat("v", 8<<10)} }},
		{name: "header value over 8 KiB", mutate: func(m *eos.Message) { m.Headers = map[string]string{"X": strings.Repeat("v", 8<<10+1)} },
			wantField: eos.FieldHeader, wantName: "X", wantText: "value longer than 8192 bytes"},
		{name: "header value invalid utf-8", mutate: func(m *eos.Message) { m.Headers = map[string]string{"X": "caf\xc3"} },
			wantField: eos.FieldHeader, wantName: "X", wantText: "value is not valid UTF-8"},
		{name: "64 headers", mutate: func(m *eos.Message) { m.Headers = manyHeaders(eos.MaxHeaders, 1) }},
		{name: "65 headers", mutate: func(m *eos.Message) { m.Headers = manyHeaders(eos.MaxHeaders+1, 1) },
			wantField: eos.FieldHeader, wantText: "more than 64 headers (65)"},
		{name: "headers of 64 KiB in all", mutate: func(m *eos.Message) { m.Headers = manyHeaders(8, 8<<10-3) }},
		{name: "headers over 64 KiB in all", mutate: func(m *eos.Message) { m.Headers = manyHeaders(8, 8<<10-2) },
			wantField: eos.FieldHeader, wantText: "add up to more than 65536 bytes (65544)"},
		{name: "payload checked before headers", limits: eos.Limits{MaxPayload: 1},
			mutate: func(m *eos.Message) {
				m.Payload = []byte("ab")
				m.Headers = map[string]string{"": ""}
			},
			wantField: eos.FieldPayload, wantText: "payload:"},
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := validMessage()
			c.mutate(&m)
			err := c.limits.Validate(m)
			if c.wantField == "" {
				if err != nil {
					t.Fatalf("Validate: unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted the message; want a %s error", c.wantField)
			}
			if !errors.Is(err, eos.ErrInvalidMessage) {
				t.Errorf("errors.Is(%v, ErrInvalidMessage) = false", err)
			}
			if errors.Is(err, eos.ErrInvalidConfig) || errors.Is(err, eos.ErrStore) {
				t.Errorf("%v matches an unrelated sentinel", err)
			}
			var ve *eos.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("errors.As(%T, *ValidationError) = false", err)
			}
			if ve.Field != c.wantField {
				t.Errorf("Field = %q, want %q", ve.Field, c.wantField)
			}
			if ve.Name != c.wantName {
				t.Errorf("Name = %q, want %q", ve.Name, c.wantName)
			}
			if ve.Reason == "" {
				t.Errorf("empty Reason")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "eos: invalid message: ") {
				t.Errorf("error %q lacks the eos: invalid message prefix", msg)
			}
			if !strings.Contains(msg, c.wantText) {
				t.Errorf("error %q does not contain %q", msg, c.wantText)
			}
			if !strings.Contains(msg, ve.Reason) {
				t.Errorf("error %q does not contain its Reason %q", msg, ve.Reason)
			}
		})
	}
}

// manyHeaders returns n headers H00, H01, … with values of size bytes.
func manyHeaders(n, size int) map[string]string {
	h := make(map[string]string, n)
	for i := range n {
		h[fmt.Sprintf("H%02d", i)] = strings.Repeat("v", size)
	}
	return h
}

// TestValidateUsesDefaults checks that the package-level Validate is Limits{}.
func TestValidateUsesDefaults(t *testing.T) {
	m := validMessage()
	m.Payload = make([]byte, eos.DefaultMaxPayload)
	if err := eos.Validate(m); err != nil {
		t.Fatalf("Validate at default max: %v", err)
	}
	m.Payload = append(m.Payload, 0)
	err := eos.Validate(m)
	var ve *eos.ValidationError
	if !errors.As(err, &ve) || ve.Field != eos.FieldPayload {
		t.Fatalf("Validate over default max = %v, want a payload ValidationError", err)
	}
}

// TestValidateHeaderOnlyBadOne checks that one bad header among many good ones
// is found and named whatever the map iteration order.
func TestValidateHeaderOnlyBadOne(t *testing.T) {
	h := map[string]string{}
	for _, n := range []string{"A", "B", "C", "D", "E", "F", "G", "H"} {
		h[n] = "ok"
	}
	h["Bad Name"] = "ok"
	m := validMessage()
	m.Headers = h
	for range 20 {
		var ve *eos.ValidationError
		if err := eos.Validate(m); !errors.As(err, &ve) || ve.Name != "Bad Name" {
			t.Fatalf("Validate = %v, want header %q refused", err, "Bad Name")
		}
	}
}

func TestLimitsCheck(t *testing.T) {
	for _, l := range []eos.Limits{{}, {MaxPayload: 1}, {MaxPayload: eos.DefaultMaxPayload}, {MaxPayload: 1 << 30}} {
		if err := l.Check(); err != nil {
			t.Errorf("%+v.Check() = %v, want nil", l, err)
		}
	}

	err := eos.Limits{MaxPayload: -1}.Check()
	if err == nil {
		t.Fatal("Limits{MaxPayload:-1}.Check() = nil")
	}
	if !errors.Is(err, eos.ErrInvalidConfig) {
		t.Errorf("errors.Is(%v, ErrInvalidConfig) = false", err)
	}
	if errors.Is(err, eos.ErrInvalidMessage) {
		t.Errorf("%v matches ErrInvalidMessage", err)
	}
	var ce *eos.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("errors.As(%T, *ConfigError) = false", err)
	}
	if ce.Field != "Limits.MaxPayload" {
		t.Errorf("Field = %q, want Limits.MaxPayload", ce.Field)
	}
	if want := "eos: invalid configuration: Limits.MaxPayload: negative"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

// FuzzValidate checks that Validate never panics, that it refuses with a
// well-formed *ValidationError, and that it accepts exactly the messages an
// independent reading of the rules accepts (so rejecting everything, or
// accepting too much, both fail). headers is split into zero or more
// "name\x1fvalue" entries separated by \x1e (both control characters, which
// no valid name or value holds).
func FuzzValidate(f *testing.F) {
	type seed struct {
		id, key string
		subject string
		payload []byte
		headers string
		max     int
	}
	for _, s := range []seed{
		{"0190a5f2-6c1e-7b3a-9f00-0123456789ab", "order-42", "", []byte("{}"), "X-Request-Id\x1fr1", 0},
		{"", "", "", nil, "", 0},
		{"id", "", "", nil, "", 0},
		{strings.Repeat("a", 255), strings.Repeat("k", 255), "", nil, "a!#$%&'*+-.^_`|~9\x1fa\tb", 0},
		{strings.Repeat("a", 256), "", "", nil, "X\x1f", 0},
		{"a\x00b", "k", "", nil, "X\x1fv", 0},
		{"ab\n", "k", "", nil, "X\x1fv", 0},
		{"ab\x7f", "k", "", nil, "X\x1fv", 0},
		{"ab\u0085", "k", "", nil, "X\x1fv", 0},
		{"ab\xff", "k\u0085", "", nil, "X\x1fv", 0},
		{"id", "k", "", []byte("0123456789"), "X\x1fv", 5},
		{"id", "k", "", []byte("01234"), "X\x1fv\x1eY\x1fw\x1eZ\x1f", 5},
		{"id", "", "", nil, "X Id\x1fv", 0},
		{"id", "", "", nil, "X:\x1fv", 0},
		{"id", "", "", nil, "Clé\x1fv", 0},
		{"id", "", "", nil, "X\x1fa\r\nb", 0},
		{"id", "", "", nil, "X\x1fcaf\xc3", 0},
		{"id", "", "", nil, "X\x1fa\x7f", -1},
		{"id", "", "", nil, strings.Repeat("H\x1fv\x1e", 70), 0},
		{"id", "k", "orders.eu.created", []byte("{}"), "", 0},
		{"id", "k", strings.Repeat("s", 256), nil, "", 0},
		{"id", "k", "orders\x00", nil, "", 0},
		{"id", "k", "orders.\xff", nil, "", 0},
		{"id", "k", "\u0085", nil, "", 0},
	} {
		f.Add(s.id, s.key, s.subject, s.payload, s.headers, s.max)
	}

	f.Fuzz(func(t *testing.T, id, key, subject string, payload []byte, headers string, max int) {
		// A payload limit small enough for the fuzzer's payloads to cross it.
		if max < 0 {
			max = 0 // negative limits are refused by Check; see TestLimitsCheck
		}
		max %= 4096
		l := eos.Limits{MaxPayload: max}
		m := eos.Message{ID: id, Key: key, Subject: subject, Payload: payload, Headers: parseHeaders(headers)}

		err := l.Validate(m)
		if want := acceptable(l, m); (err == nil) != (want == "") {
			t.Fatalf("Validate(%+v) = %v, but the rules say %q", m, err, want)
		}
		if err != nil {
			var ve *eos.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate returned %T %v, want *eos.ValidationError", err, err)
			}
			if _, ok := err.(*eos.ValidationError); !ok {
				t.Fatalf("Validate returned %T, want *eos.ValidationError itself", err)
			}
			if !errors.Is(err, eos.ErrInvalidMessage) {
				t.Fatalf("%v does not match ErrInvalidMessage", err)
			}
			switch ve.Field {
			case eos.FieldID, eos.FieldKey, eos.FieldSubject, eos.FieldPayload, eos.FieldHeader:
			default:
				t.Fatalf("unknown Field %q", ve.Field)
			}
			if ve.Field != eos.FieldHeader && ve.Name != "" {
				t.Fatalf("Name %q set for field %q", ve.Name, ve.Field)
			}
			if _, ok := m.Headers[ve.Name]; ve.Name != "" && !ok {
				t.Fatalf("Name = %q, not one of the headers", ve.Name)
			}
			if ve.Reason == "" || !strings.Contains(err.Error(), ve.Reason) {
				t.Fatalf("error %q lacks its reason %q", err.Error(), ve.Reason)
			}
		}

		// Fingerprint: deterministic, fixed size, ignores headers, ID and
		// subject.
		fp := eos.Fingerprint(m)
		if len(fp) != eos.FingerprintSize {
			t.Fatalf("len(Fingerprint) = %d", len(fp))
		}
		m2 := eos.Message{ID: id + "x", Key: key, Subject: subject + ".x", Payload: append([]byte(nil), payload...)}
		if !bytes.Equal(fp, eos.Fingerprint(m2)) {
			t.Fatalf("Fingerprint not deterministic or depends on ID/Headers/Subject")
		}
		// Moving the key/payload boundary changes the fingerprint.
		if len(key) > 0 {
			shifted := eos.Message{Key: key[:len(key)-1], Payload: append([]byte{key[len(key)-1]}, payload...)}
			if bytes.Equal(fp, eos.Fingerprint(shifted)) {
				t.Fatalf("Fingerprint(%q,%q) equals Fingerprint(%q,%q)", key, payload, shifted.Key, shifted.Payload)
			}
		}
		if len(payload) > 0 {
			shifted := eos.Message{Key: key + string(payload[:1]), Payload: payload[1:]}
			if bytes.Equal(fp, eos.Fingerprint(shifted)) {
				t.Fatalf("Fingerprint(%q,%q) equals Fingerprint(%q,%q)", key, payload, shifted.Key, shifted.Payload)
			}
		}
	})
}

// parseHeaders splits s into headers as FuzzValidate describes; "" is nil.
func parseHeaders(s string) map[string]string {
	if s == "" {
		return nil
	}
	h := map[string]string{}
	for _, e := range strings.Split(s, "\x1e") {
		name, value, _ := strings.Cut(e, "\x1f")
		h[name] = value
	}
	return h
}

// acceptable returns "" if m obeys every rule of l, or the rule it breaks:
// the rules of Validate's documentation, written independently of it.
func acceptable(l eos.Limits, m eos.Message) string {
	text := func(s string) bool {
		if len(s) > 255 || !utf8.ValidString(s) {
			return false
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				return false
			}
		}
		return true
	}
	max := l.MaxPayload
	if max == 0 {
		max = eos.DefaultMaxPayload
	}
	switch {
	case m.ID == "" || !text(m.ID):
		return "id"
	case !text(m.Key):
		return "key"
	case !text(m.Subject):
		return "subject"
	case len(m.Payload) > max:
		return "payload"
	case len(m.Headers) > eos.MaxHeaders:
		return "header count"
	}
	total := 0
	for name, value := range m.Headers {
		total += len(name) + len(value)
		if name == "" || len(name) > eos.MaxHeaderNameLen {
			return "header name length"
		}
		for i := 0; i < len(name); i++ {
			if !isTchar(name[i]) {
				return "header name character"
			}
		}
		if len(value) > eos.MaxHeaderValueLen || !utf8.ValidString(value) {
			return "header value"
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				return "header value character"
			}
		}
	}
	if total > eos.MaxHeaderBytes {
		return "header bytes"
	}
	return ""
}

// isTchar is RFC 9110's tchar, written independently of the package.
func isTchar(c byte) bool {
	return c < 0x80 && strings.IndexByte("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", c) >= 0
}

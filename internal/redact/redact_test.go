package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		// Token and user:password in the user info.
		{"nats://s3cr3t@127.0.0.1:4222", "nats://xxxxx@127.0.0.1:4222"},
		{"nats://alice:s3cr3t@nats.example:4222", "nats://alice:xxxxx@nats.example:4222"},
		{"tls://s3cr3t@nats.example:4443", "tls://xxxxx@nats.example:4443"},
		{"postgres://eos:s3cr3t@127.0.0.1:5432/db?sslmode=disable", "postgres://eos:xxxxx@127.0.0.1:5432/db?sslmode=disable"},
		{"postgres://eos@127.0.0.1/db", "postgres://xxxxx@127.0.0.1/db"},
		// Secrets in the query, in their order, other parameters kept.
		{"postgres://127.0.0.1/db?user=eos&password=s3cr3t&sslmode=disable", "postgres://127.0.0.1/db?user=eos&password=xxxxx&sslmode=disable"},
		{"postgres://h/db?sslpassword=s3cr3t&sslmode=verify-full", "postgres://h/db?sslpassword=xxxxx&sslmode=verify-full"},
		{"nats://h:4222?token=s3cr3t", "nats://h:4222?token=xxxxx"},
		{"nats://h:4222?Token=s3cr3t&name=x", "nats://h:4222?Token=xxxxx&name=x"},
		{"http://h/?access_token=s3cr3t#frag", "http://h/?access_token=xxxxx#frag"},
		// Several servers, as NATS accepts.
		{"nats://a:1,nats://s3cr3t@b:2", "nats://a:1,nats://xxxxx@b:2"},
		// Nothing to hide.
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"postgres://127.0.0.1:5432/test?sslmode=disable", "postgres://127.0.0.1:5432/test?sslmode=disable"},
		{"", ""},
		// Keyword/value DSNs.
		{"host=h user=eos password=s3cr3t dbname=test", "host=h user=eos password=xxxxx dbname=test"},
		{"host=h password = 's3 cr\\'3t' dbname=test", "host=h password = xxxxx dbname=test"},
		{"host=h sslpassword=s3cr3t", "host=h sslpassword=xxxxx"},
		// No scheme, user info before the host.
		{"alice:s3cr3t@h:4222", "xxxxx@h:4222"},
		// Not parseable as a URL: nothing of it is shown.
		{"postgres://eos:s3cr3t@h:port/db", "postgres://xxxxx@h:port/db"},
	} {
		got := URL(c.in)
		if got != c.want {
			t.Errorf("URL(%q) = %q, want %q", c.in, got, c.want)
		}
		if strings.Contains(got, "s3") {
			t.Errorf("URL(%q) = %q leaks the secret", c.in, got)
		}
	}
}

func TestText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`cannot connect to NATS at nats://s3cr3t@127.0.0.1:1: nats: no servers available`,
			`cannot connect to NATS at nats://xxxxx@127.0.0.1:1: nats: no servers available`},
		{`failed to connect to "postgres://eos:s3cr3t@h/db?password=s3cr3t2": refused`,
			`failed to connect to "postgres://eos:xxxxx@h/db?password=xxxxx": refused`},
		{`cannot parse "host=h password=s3cr3t dbname=x": bad`, `cannot parse "host=h password=xxxxx dbname=x": bad`},
		{`parse 'user=eos password='s3 cr3t' host=h'`, `parse 'user=eos password=xxxxx host=h'`},
		{`(proxy at nats://127.0.0.1:4222, token=s3cr3t)`, `(proxy at nats://127.0.0.1:4222, token=xxxxx)`},
		{`no secret here: nats://127.0.0.1:4222, a=b`, `no secret here: nats://127.0.0.1:4222, a=b`},
	} {
		got := Text(c.in)
		if got != c.want {
			t.Errorf("Text(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
		if strings.Contains(got, "s3") {
			t.Errorf("Text(%q) = %q leaks the secret", c.in, got)
		}
	}
}

func TestSecretKey(t *testing.T) {
	for _, k := range []string{"password", "PASSWORD", "sslpassword", "token", "auth_token", "access_token", "pass", "pwd", "secret", "api_key", "apikey", "nkey", "jwt"} {
		if !secretKey(k) {
			t.Errorf("%q not secret", k)
		}
	}
	for _, k := range []string{"user", "host", "sslmode", "dbname", "name", "sslkey"} {
		if secretKey(k) {
			t.Errorf("%q secret", k)
		}
	}
}

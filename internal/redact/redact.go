// Package redact hides secrets in connection strings before they are
// printed or logged: the user info of a URL (a NATS token, a PostgreSQL
// password), password and token query parameters, and the same keys in
// keyword/value DSNs (libpq's "host=h password=…"). One helper for every
// place that shows a connection string, error messages included, so that
// no call site forgets a form.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every secret.
const Mask = "xxxxx"

// URL returns raw with its secrets masked. raw may be a URL, a
// comma-separated list of URLs (NATS), a keyword/value DSN, or a
// host address with user info but no scheme. What cannot be parsed keeps
// only what is certainly not secret.
func URL(raw string) string {
	if strings.Count(raw, "://") > 1 && strings.Contains(raw, ",") {
		parts := strings.Split(raw, ",")
		for i, p := range parts {
			parts[i] = URL(p)
		}
		return strings.Join(parts, ",")
	}
	scheme, rest, hasScheme := strings.Cut(raw, "://")
	if !hasScheme {
		if strings.Contains(raw, "=") {
			return keyValues(raw)
		}
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			return Mask + raw[at:]
		}
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Mask the whole authority's user info, then any secret
		// parameter; the rest is left as it was written.
		if end := strings.IndexAny(rest, "/?#"); end >= 0 {
			if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
				rest = Mask + rest[at:]
			}
		} else if at := strings.LastIndex(rest, "@"); at >= 0 {
			rest = Mask + rest[at:]
		}
		return scheme + "://" + keyValues(rest)
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			u.User = url.UserPassword(u.User.Username(), Mask)
		} else {
			u.User = url.User(Mask) // a lone user may be a token (NATS)
		}
	}
	if u.RawQuery != "" {
		u.RawQuery = query(u.RawQuery)
	}
	return u.String()
}

// query masks the secret parameters of a raw query, keeping their order.
func query(raw string) string {
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		if key, err := url.QueryUnescape(k); err == nil && secretKey(key) {
			parts[i] = k + "=" + Mask
		}
	}
	return strings.Join(parts, "&")
}

var (
	// urlPattern finds URLs in free text: a scheme, "://", and everything
	// up to a space, a quote or a bracket.
	urlPattern = regexp.MustCompile("[A-Za-z][A-Za-z0-9+.-]*://[^\\s\"'`<>(){}\\[\\],]+")
	// keyValuePattern finds key=value pairs; a value is single-quoted
	// (with backslash escapes, as libpq reads it) or runs to a separator.
	keyValuePattern = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'"&;,)]*)`)
)

// keyValues masks the values of secret keys in s.
func keyValues(s string) string {
	return keyValuePattern.ReplaceAllStringFunc(s, func(m string) string {
		sub := keyValuePattern.FindStringSubmatch(m)
		if !secretKey(sub[1]) {
			return m
		}
		return sub[1] + sub[2] + Mask
	})
}

// Text masks the secrets of every URL and key=value pair in a message,
// such as an error that echoes the connection string it failed with.
func Text(s string) string {
	s = urlPattern.ReplaceAllStringFunc(s, func(m string) string {
		// Punctuation that ends a sentence is not part of the URL.
		trimmed := strings.TrimRight(m, ".:;!?")
		return URL(trimmed) + m[len(trimmed):]
	})
	return keyValues(s)
}

// secretKey reports whether a parameter or DSN keyword names a secret.
func secretKey(key string) bool {
	k := strings.ToLower(key)
	switch k {
	case "pass", "passwd", "pwd", "apikey", "api_key", "nkey", "jwt", "creds", "secret":
		return true
	}
	return strings.HasSuffix(k, "password") || strings.HasSuffix(k, "token") || strings.HasSuffix(k, "_secret")
}

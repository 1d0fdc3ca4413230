package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
)

// Require reports whether missing services fail tests instead of skipping
// them.
func Require() bool { return os.Getenv("EOS_TEST_REQUIRE_SERVICES") == "1" }

func service(t testing.TB, env, what string) string {
	t.Helper()
	if u := os.Getenv(env); u != "" {
		return u
	}
	if Require() {
		t.Fatalf("%s is not set and EOS_TEST_REQUIRE_SERVICES=1: %s is required", env, what)
	}
	t.Skipf("%s not set: skipping the %s test", env, what)
	return ""
}

// Wanted reports whether a test should use the service named by env: it is
// set, or services are required (and its absence will fail the test).
func Wanted(env string) bool { return os.Getenv(env) != "" || Require() }

// PostgresURL returns EOS_TEST_POSTGRES_URL.
func PostgresURL(t testing.TB) string { return service(t, "EOS_TEST_POSTGRES_URL", "PostgreSQL") }

// RedisURL returns EOS_TEST_REDIS_URL.
func RedisURL(t testing.TB) string { return service(t, "EOS_TEST_REDIS_URL", "Redis") }

// NATSURL returns EOS_TEST_NATS_URL.
func NATSURL(t testing.TB) string { return service(t, "EOS_TEST_NATS_URL", "NATS") }

// Name returns a fresh lower-case identifier with the given prefix, for a
// test's own schema, stream or key space.
func Name(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
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

// Tool returns the path of the external program name (promtool,
// prometheus, chromium) found on PATH. When it is missing the test is
// skipped, or fails when services are required (EOS_TEST_REQUIRE_SERVICES=1:
// CI installs them).
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if Require() {
		t.Fatalf("%s is not on PATH and EOS_TEST_REQUIRE_SERVICES=1: install it (Debian: .ci/run does)", name)
	}
	t.Skipf("%s is not on PATH: skipping", name)
	return ""
}

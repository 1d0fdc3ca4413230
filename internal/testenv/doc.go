// Package testenv finds the external services tests talk to. A test that
// needs one calls the matching function: it returns the service's URL, skips
// the test when the service is not configured, or fails it when
// EOS_TEST_REQUIRE_SERVICES=1 (as CI sets) and the service is missing.
package testenv

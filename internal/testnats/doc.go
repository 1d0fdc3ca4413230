// Package testnats starts what tests need of NATS: an embedded server with
// JetStream in the test's temporary directory, and a client on it, so that
// each test has a broker of its own.
package testnats

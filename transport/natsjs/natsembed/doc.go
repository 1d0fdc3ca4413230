// Package natsembed runs a NATS server with JetStream inside the process:
// the broker of eos's embedded default, so that a program runs on a bare
// machine with nothing installed.
//
// JetStream stores streams in files under Config.Dir and, by default, syncs
// every write to disk before acknowledging it (sync_interval: always). The
// server's own default syncs every two minutes; published analyses of
// JetStream lost acknowledged writes on power loss under that default,
// which for eos would mean a publish the relay marked sent and no broker has.
// Syncing always caps a single server at a few thousand publishes per
// second on an ordinary disk (about 12k/s on the project's test machine,
// a tenth of the rate without it); SyncInterval trades that for speed,
// knowingly.
//
// It is a separate package so that programs that talk to an external NATS
// server do not link nats-server.
package natsembed

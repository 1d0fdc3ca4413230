package worker

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eoskit/eos"
	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/inbox/inboxtest"
	"github.com/eoskit/eos/internal/testdb"
	"github.com/eoskit/eos/torture/supervisor"
)

// TestFailpointStream checks that each start of each worker draws its own
// failpoint stream, the same one for the same seed.
func TestFailpointStream(t *testing.T) {
	seen := map[uint64]string{}
	for _, name := range []string{"orders-0", "orders-1", "relay"} {
		for _, start := range []string{"1", "2", "12"} {
			s := failpointStream(name, start)
			if prev, ok := seen[s]; ok {
				t.Errorf("%s start %s draws the stream of %s", name, start, prev)
			}
			seen[s] = name + "/" + start
			if failpointStream(name, start) != s {
				t.Errorf("%s start %s: stream not stable", name, start)
			}
		}
	}
	if failpointStream("orders-1", "2") == failpointStream("orders-12", "") {
		t.Error("name and start run together")
	}
}

// The workers' log lines mask the secrets of any connection string they
// quote.
func TestLoggerMasksSecrets(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelInfo)
	log.Error("worker failed at postgres://eos:secret@h/db", "error", errors.New("dial postgres://h/db?password=secret: refused"),
		"url", "nats://secret@h:4222")
	if out := buf.String(); strings.Contains(out, "secret") || !strings.Contains(out, "xxxxx") {
		t.Errorf("log line leaks or masks nothing: %s", out)
	}
}

func TestConfigTravelsInTheEnvironment(t *testing.T) {
	in := Config{Name: "orders-1", Role: RoleOrders, Store: StoreConfig{Kind: "sqlite", Path: "/x/eos.db"}, LogLevel: "info",
		Topology: Topology{OrdersStream: "O", PaymentsStream: "P", Base: "b"}, Failpoints: "driver.begin=error", FailpointSeed: 9, Handler: HandlerMessage,
		Transport: TransportKafka, Kafka: KafkaConfig{Brokers: []string{"127.0.0.1:1"}, Dial: map[string]string{"127.0.0.1:1": "127.0.0.1:2"},
			SessionTimeout: time.Second}}
	env, err := in.Env()
	if err != nil {
		t.Fatal(err)
	}
	name, value, _ := strings.Cut(env, "=")
	t.Setenv(name, value)
	out, err := FromEnv()
	if err != nil || !reflect.DeepEqual(out, in) || out.Level() != slog.LevelInfo {
		t.Fatalf("FromEnv = %+v, %v; want %+v", out, err, in)
	}
	t.Setenv(ConfigEnv, "")
	if _, err := FromEnv(); !errors.Is(err, ErrConfig) {
		t.Errorf("no configuration: %v, want ErrConfig", err)
	}
}

func TestCheckHandler(t *testing.T) {
	for in, want := range map[string]string{"": HandlerBatch, "batch": HandlerBatch, "message": HandlerMessage} {
		if got, err := CheckHandler(in); err != nil || got != want {
			t.Errorf("CheckHandler(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"Batch", "messages", " batch"} {
		if _, err := CheckHandler(in); err == nil || !strings.Contains(err.Error(), "want batch or message") {
			t.Errorf("CheckHandler(%q): %v, want an error naming the choices", in, err)
		}
	}
}

// A store failure injected at driver.begin reaches the inbox's ErrorHook,
// which reports it on the events pipe; the next batch goes through.
func TestInjectedStoreFailuresAreReported(t *testing.T) {
	fps := &failpoint.Set{}
	fps.Arm(FailDriverBegin, failpoint.Times(1, failpoint.Error()))
	var events bytes.Buffer
	h := func(context.Context, *sql.Tx, eos.Message) error { return nil }
	p, err := inbox.New(withFailpoints(testdb.SQLite(t).Driver, fps), h, inbox.Config{Consumer: "c",
		Hooks: []inbox.Hook{storeErrors(supervisor.NewEmitter(&events))}})
	if err != nil {
		t.Fatal(err)
	}
	ds := inboxtest.NewDeliveries(eos.Message{ID: "m", Payload: []byte("x")}).Inbox()
	if _, err := p.Process(context.Background(), ds); !errors.Is(err, failpoint.ErrInjected) {
		t.Errorf("Process: %v, want the injected failure", err)
	}
	if events.String() != EventStoreError+"\n" {
		t.Errorf("events %q, want one %s", events.String(), EventStoreError)
	}
	res, err := p.Process(context.Background(), ds)
	if err != nil || res.Count(inbox.Applied) != 1 || events.String() != EventStoreError+"\n" {
		t.Errorf("after the failure: %v, %+v, events %q; want the message applied and nothing more reported", err, res, events.String())
	}
}

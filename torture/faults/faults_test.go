package faults

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/eoskit/eos/torture/worker"
	"github.com/eoskit/eos/transport/natsjs/natsembed"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		list, want, err string
	}{
		{"all", strings.Join(All(), ","), ""},
		{"none", "", ""},
		{"kill, proxy", "kill,proxy", ""},
		{"kill,meteor", "", `unknown fault "meteor"`},
	} {
		s, err := Parse(c.list)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q): %v, want %q", c.list, err, c.err)
			}
			continue
		}
		var got []string
		for _, f := range All() {
			if s[f] {
				got = append(got, f)
			}
		}
		if err != nil || strings.Join(got, ",") != c.want {
			t.Errorf("Parse(%q) = %v, %v; want %s", c.list, got, err, c.want)
		}
	}
}

func TestDefaultFailpointsParse(t *testing.T) {
	for _, tr := range []string{worker.TransportNATS, worker.TransportKafka} {
		if err := CheckFailpointSpec(DefaultFailpointSpec(tr), tr); err != nil {
			t.Fatal(err)
		}
		if err := CheckFailpointSpec("inbox.after_claim=explode", tr); err == nil {
			t.Error("a bad spec passed")
		}
	}
	// Another transport's failpoints would never fire.
	if err := CheckFailpointSpec(DefaultFailpoints, worker.TransportKafka); err == nil {
		t.Error("natsjs failpoints passed on Kafka")
	}
	if err := CheckFailpointSpec(DefaultKafkaFailpoints, worker.TransportNATS); err == nil {
		t.Error("kafka failpoints passed on NATS")
	}
}

// The proxy sits in front of the networked services only; broker-restart
// needs the embedded server.
func TestPlan(t *testing.T) {
	for _, c := range []struct {
		postgres, nats string
		kafka          []string // with the Kafka transport: nil for the embedded cluster
		proxied        string
		notApplicable  []string
	}{
		{"", "", nil, "nats", nil},
		{"postgres://h/db", "", nil, "postgres,nats", nil},
		{"postgres://h/db", "nats://h:4222", nil, "postgres,nats", []string{BrokerRestart}},
		{"", "nats://h:4222", nil, "nats", []string{BrokerRestart}},
		{"postgres://h/db", "tls://h:4222", nil, "postgres", []string{BrokerRestart}},
		{"", "tls://h:4222", nil, "", []string{BrokerRestart, Proxy}},
		{"", worker.TransportKafka, nil, "kafka", nil},
		{"postgres://h/db", worker.TransportKafka, []string{"h:9092"}, "postgres,kafka", []string{BrokerRestart}},
	} {
		sv := Services{Postgres: c.postgres, NATS: c.nats}
		if c.nats == worker.TransportKafka {
			sv = Services{Postgres: c.postgres, Transport: worker.TransportKafka, Kafka: c.kafka}
		}
		if got := strings.Join(ProxiedServices(sv), ","); got != c.proxied {
			t.Errorf("ProxiedServices(%+v) = %q, want %q", sv, got, c.proxied)
		}
		all, _ := Parse("all")
		inject, na := all.Plan(sv)
		if len(na) != len(c.notApplicable) || len(inject)+len(na) != len(All()) {
			t.Errorf("%q, %q: inject %v, not applicable %v", c.postgres, c.nats, inject, na)
			continue
		}
		for i, f := range c.notApplicable {
			if !strings.HasPrefix(na[i], f+" (") || slices.Contains(inject, f) {
				t.Errorf("%q, %q: inject %v, not applicable %v; want %s not applicable", c.postgres, c.nats, inject, na, f)
			}
		}
	}
}

func TestKillsStrikeOnTheSchedule(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kills := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Kills(ctx, rand.New(rand.NewPCG(1, 2)), Schedule{First: Span{Min: time.Millisecond}, Gap: Span{Spread: time.Millisecond}},
			func(*rand.Rand) bool { kills <- struct{}{}; return true })
	}()
	for range 3 {
		<-kills
	}
	cancel()
	<-done
}

// echo serves lines back until the listener closes.
func echo(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					fmt.Fprint(c, line)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// Each kind of proxy fault strikes and is lifted after its hold.
func TestProxyFaultsStrikeAndHeal(t *testing.T) {
	var p Proxies
	defer p.Close()
	through, err := p.Front("echo", "tcp://"+echo(t), "1")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Fronts("echo") || p.Fronts("nats") {
		t.Errorf("Fronts: echo %v, nats %v", p.Fronts("echo"), p.Fronts("nats"))
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	const strikes = 30
	for range strikes {
		if !p.strike(context.Background(), rnd, Span{Min: time.Millisecond}) {
			t.Fatal("strike gave up with ctx alive")
		}
	}
	c := p.Counts()
	if c.Total() != strikes || c.Resets == 0 || c.Latency == 0 || c.Blackholes == 0 {
		t.Errorf("counts %+v after %d strikes, want each kind", c, strikes)
	}
	u, err := url.Parse(through)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintln(conn, "hello")
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "hello\n" {
		t.Errorf("through the proxy after the faults: %q, %v; want it healed", line, err)
	}
}

// A restarted broker keeps its address and its streams' files.
func TestBrokerRestart(t *testing.T) {
	b, err := StartBroker(natsembed.Config{Dir: filepath.Join(t.TempDir(), "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if b.Restarts() != 1 {
		t.Errorf("restarts %d, want 1", b.Restarts())
	}
	nc, err = nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ = nc.JetStream()
	if _, err := js.StreamInfo("S"); err != nil {
		t.Errorf("stream after the restart: %v", err)
	}
	b.Shutdown()
	if err := b.Restart(); err == nil {
		t.Error("restarted a broker that was shut down")
	}
}

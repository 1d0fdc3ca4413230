package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// KafkaBroker is an embedded Kafka cluster (franz-go's kfake, in this
// process) that keeps its data in a directory and can be restarted on the
// same ports and data, as the broker restart fault: clients reconnect on
// their own.
type KafkaBroker struct {
	opts []kfake.Opt // without the ports

	mu       sync.Mutex
	c        *kfake.Cluster // nil after a failed restart or Shutdown
	ports    []int
	addrs    []string
	restarts int
}

// kafkaMinSessionTimeout is the shortest group session the embedded
// cluster accepts: short, so that a killed member's partitions move on
// soon.
const kafkaMinSessionTimeout = 500 * time.Millisecond

// StartKafka starts an embedded cluster of n brokers on loopback, its data
// in dir.
func StartKafka(dir string, n int) (*KafkaBroker, error) {
	b := &KafkaBroker{opts: []kfake.Opt{kfake.NumBrokers(n), kfake.DataDir(dir), kfake.GroupMinSessionTimeout(kafkaMinSessionTimeout)}}
	c, err := kfake.NewCluster(b.opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded Kafka: %w", err)
	}
	b.c, b.addrs = c, c.ListenAddrs()
	for _, a := range b.addrs {
		_, port, err := net.SplitHostPort(a)
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			c.Close()
			return nil, fmt.Errorf("embedded Kafka: port of %s", a)
		}
		b.ports = append(b.ports, p)
	}
	return b, nil
}

// Addrs returns the brokers' addresses (host:port), the same across
// restarts.
func (b *KafkaBroker) Addrs() []string { return b.addrs }

// Restarts returns the restarts so far.
func (b *KafkaBroker) Restarts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.restarts
}

// Restart closes the cluster and starts it again on the same ports and
// data.
func (b *KafkaBroker) Restart() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c == nil {
		return fmt.Errorf("kafka restart: the cluster is down")
	}
	b.c.Close()
	b.c = nil
	opts := append(append([]kfake.Opt{}, b.opts...), kfake.Ports(b.ports...))
	return startAgain("kafka restart", &b.restarts, func() (err error) {
		b.c, err = kfake.NewCluster(opts...)
		return err
	})
}

// Run restarts the cluster on s's schedule until ctx ends, and returns the
// error of a restart that failed.
func (b *KafkaBroker) Run(ctx context.Context, rnd *rand.Rand, s Schedule) error {
	return restarts(ctx, rnd, s, b.Restart)
}

// Shutdown stops the cluster.
func (b *KafkaBroker) Shutdown() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		b.c.Close()
		b.c = nil
	}
}

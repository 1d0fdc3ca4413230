package wake

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestChanges(t *testing.T) {
	var c Changes
	var n atomic.Int32
	done := make(chan error)
	go func() { done <- c.Wait(context.Background(), func() bool { return n.Load() == 3 }) }()
	for range 3 {
		n.Add(1)
		c.Notify()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Wait(ctx, func() bool { return false }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on an ended ctx: %v", err)
	}
	ch := c.C()
	c.Notify()
	select {
	case <-ch:
	default:
		t.Fatal("Notify did not close the channel taken before it")
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/eoskit/eos/torture/worker"
)

// runWorker is the hidden command eos demo and eos torture run their
// workers with (see worker.Serve).
func runWorker(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) int {
	err := worker.ErrConfig
	if len(args) == 0 {
		err = worker.Serve(ctx, stdin, stderr)
	}
	switch {
	case errors.Is(err, worker.ErrConfig):
		fmt.Fprintln(stderr, "eos: "+err.Error())
		return exitUsage
	case err != nil:
		return exitFailed
	}
	return exitOK
}

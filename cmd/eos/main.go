package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/eoskit/eos/torture/worker"
)

// Exit codes.
const (
	exitOK         = 0
	exitFailed     = 1   // the command ran and found something wrong
	exitUsage      = 2   // bad flags or arguments, or a service it cannot reach
	exitIncomplete = 3   // timed out before the pipeline drained, and nothing failed so far
	exitSignaled   = 130 // interrupted
)

const usage = `eos — exactly-once effects: the operator's command

Usage:
  eos <command> [flags]

Commands:
  demo      run the payments scenario end to end and check it (eos demo -h)
  torture   run it repeatedly under faults and check every run (eos torture -h)
  serve     serve the status page, /metrics and probes of a demo's pipeline (eos serve -h)
  migrate   apply, revert or list eos's schema migrations, or print their SQL (eos migrate -h)
  reconcile compare a stream with what a consumer applied (eos reconcile -h)
  provider  serve a payment-provider simulator on the Idempotency-Key middleware (eos provider -h)
  version   print the version of eos and of the Go that built it
  help      show this help

Run 'eos <command> -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit code. Errors are
// written to stderr as one line each.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "torture":
		return runTorture(ctx, args[1:], stdout, stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "reconcile":
		return runReconcile(ctx, args[1:], stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "provider":
		return runProvider(ctx, args[1:], stdout, stderr)
	case "version":
		return runVersion(args[1:], stdout, stderr)
	case worker.Command: // hidden: the demo's and torture's child processes
		return runWorker(ctx, args[1:], stdin, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "eos: unknown command %q (commands: demo, torture, serve, migrate, reconcile, provider, version; see eos help)\n", args[0])
	return exitUsage
}

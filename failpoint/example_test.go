package failpoint_test

import (
	"errors"
	"fmt"
	"slices"

	"github.com/eoskit/eos/failpoint"
	"github.com/eoskit/eos/inbox"
	"github.com/eoskit/eos/outbox"
)

// A spec arms points by name, as eos torture does in its workers; the
// names it may use are those of the packages the program runs. The Set goes
// into a config's Test.Failpoints (inbox.Config, outbox.RelayConfig, the
// natsjs configs), and each package evaluates its points on it.
func ExampleParse() {
	points := slices.Concat(inbox.FailpointNames(), outbox.FailpointNames())
	fps, err := failpoint.Parse("inbox.after_claim=error, relay.after_publish_before_mark=delay:1ms", nil, points...)
	if err != nil {
		panic(err)
	}
	err = fps.Eval(inbox.FailAfterClaim)
	fmt.Println(err, errors.Is(err, failpoint.ErrInjected))
	fmt.Println(fps.Eval(outbox.FailAfterPublishBeforeMark)) // waited 1ms, then went on
	fmt.Println(fps.Eval(inbox.FailBeforeCommit))            // not armed

	var inert *failpoint.Set // what an empty spec gives: every Eval is nil
	fmt.Println(inert.Eval(inbox.FailAfterClaim))

	// A typo is an error, not a point that never fires.
	_, err = failpoint.Parse("inbox.after_clam=crash", nil, points...)
	var se *failpoint.SpecError
	fmt.Println(errors.As(err, &se), se.Part)
	_, err = failpoint.Parse("inbox.after_claim=error@1.5", nil, points...)
	fmt.Println(errors.As(err, &se), se.Part)
	// Output:
	// failpoint: injected failure at inbox.after_claim true
	// <nil>
	// <nil>
	// <nil>
	// true inbox.after_clam=crash
	// true inbox.after_claim=error@1.5
}

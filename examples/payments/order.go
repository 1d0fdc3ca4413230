package payments

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/eoskit/eos"
)

// MaxAmount is the largest amount, in cents, an order may carry.
const MaxAmount = 1_000_000_000_00

// Order is one customer order: debit Account by Amount cents.
type Order struct {
	ID      string `json:"order_id"`
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// Charge is what an applied order asks of the payment provider. It travels
// from the order handler's outbox to the payment worker.
type Charge struct {
	OrderID string `json:"order_id"`
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// InputError reports why a payload is not a valid order or charge. Handlers
// wrap it with inbox.Permanent: retrying a malformed message cannot help.
type InputError struct {
	What   string // "order" or "charge"
	Reason string
}

func (e *InputError) Error() string { return "payments: invalid " + e.What + ": " + e.Reason }

// ParseOrder decodes and validates an order.
func ParseOrder(payload []byte) (Order, error) {
	var o Order
	if err := decode("order", payload, &o); err != nil {
		return Order{}, err
	}
	if err := check("order", o.ID, o.Account, o.Amount); err != nil {
		return Order{}, err
	}
	return o, nil
}

// ParseCharge decodes and validates a charge.
func ParseCharge(payload []byte) (Charge, error) {
	var c Charge
	if err := decode("charge", payload, &c); err != nil {
		return Charge{}, err
	}
	if err := check("charge", c.OrderID, c.Account, c.Amount); err != nil {
		return Charge{}, err
	}
	return c, nil
}

func decode(what string, payload []byte, v any) error {
	err := json.Unmarshal(payload, v)
	if err == nil {
		return nil
	}
	if typ := (*json.UnmarshalTypeError)(nil); errors.As(err, &typ) {
		return &InputError{What: what, Reason: fmt.Sprintf("field %s: want %s, got JSON %s", typ.Field, typ.Type, typ.Value)}
	}
	return &InputError{What: what, Reason: "not JSON: " + err.Error()}
}

func check(what, id, account string, amount int64) error {
	switch {
	case id == "":
		return &InputError{What: what, Reason: "missing order_id"}
	case len(id) > eos.MaxIDLen || !utf8.ValidString(id):
		return &InputError{What: what, Reason: "order_id is not a valid id"}
	case account == "":
		return &InputError{What: what, Reason: "missing account"}
	case amount <= 0:
		return &InputError{What: what, Reason: "amount must be positive, got " + strconv.FormatInt(amount, 10)}
	case amount > MaxAmount:
		return &InputError{What: what, Reason: "amount " + strconv.FormatInt(amount, 10) + " exceeds the maximum of " + strconv.FormatInt(MaxAmount, 10)}
	}
	return nil
}

// Message returns the order as the message the producer publishes: its id
// is the order id (the dedupe id all the way down), its key the account.
func (o Order) Message(createdAt time.Time) eos.Message {
	payload, _ := json.Marshal(o) // cannot fail: strings and an integer
	return eos.Message{ID: o.ID, Key: o.Account, Payload: payload, CreatedAt: createdAt}
}

// ChargeID returns the id of the charge message for an order: the outbox
// row's id, and so the PAYMENTS stream's dedupe id and the payment inbox's
// claim.
func ChargeID(orderID string) string { return "charge-" + orderID }

// Charge returns the charge an applied order asks for.
func (o Order) Charge() Charge { return Charge{OrderID: o.ID, Account: o.Account, Amount: o.Amount} }

// Account names account i of n, zero-padded so that names sort in order.
func Account(i, n int) string {
	w := len(strconv.Itoa(max(n-1, 0)))
	return fmt.Sprintf("acct-%0*d", max(w, 4), i)
}

// OrderID names order i: ids sort in publish order, as time-ordered ids do,
// which keeps the dedupe index's inserts at its right edge.
func OrderID(i int) string { return fmt.Sprintf("ord-%08d", i) }

// GenerateOrders returns n orders over the given number of accounts with
// amounts of 1 to 10000 cents, the same for the same seed.
func GenerateOrders(seed uint64, n, accounts int) []Order {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]Order, n)
	for i := range out {
		out[i] = Order{ID: OrderID(i), Account: Account(r.IntN(accounts), accounts), Amount: 1 + r.Int64N(10_000)}
	}
	return out
}

// BadInput is a malformed message the producer mixes into the orders.
type BadInput struct {
	Message eos.Message
	// NoMessageID: publish without the broker's message id header, so the
	// message arrives with an empty id and the inbox dead-letters it as
	// invalid before any handler sees it.
	NoMessageID bool
	// Why it must be dead-lettered, in words.
	Why string
}

// Malformed returns the bad inputs of the scenario, one of each kind. Each
// must end in the dead-letter table of the "orders" consumer with a clear
// error, without stopping the pipeline. account is an existing account.
func Malformed(account string) []BadInput {
	msg := func(id, payload string) eos.Message {
		return eos.Message{ID: id, Key: account, Payload: []byte(payload)}
	}
	return []BadInput{
		{Message: msg("bad-not-json", `{"order_id": "bad-not-json", "amount": `), Why: "payload is not JSON"},
		{Message: msg("bad-missing-order-id", `{"account":"`+account+`","amount":500}`), Why: "no order_id"},
		{Message: msg("bad-negative-amount", `{"order_id":"bad-negative-amount","account":"`+account+`","amount":-500}`), Why: "negative amount"},
		{Message: msg("bad-unknown-account", `{"order_id":"bad-unknown-account","account":"acct-none","amount":500}`), Why: "unknown account"},
		{Message: msg("", `{"order_id":"bad-no-message-id","account":"`+account+`","amount":500}`), NoMessageID: true, Why: "no message id"},
	}
}

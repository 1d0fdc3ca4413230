package eos_test

import (
	"errors"
	"fmt"

	"github.com/eoskit/eos"
)

func ExampleValidate() {
	err := eos.Validate(eos.Message{Payload: []byte("hello")})
	fmt.Println(err)
	fmt.Println(errors.Is(err, eos.ErrInvalidMessage))

	var ve *eos.ValidationError
	if errors.As(err, &ve) {
		fmt.Println(ve.Field, ve.Reason)
	}

	fmt.Println(eos.Validate(eos.Message{ID: eos.NewID(), Payload: []byte("hello")}))
	// Output:
	// eos: invalid message: id: empty
	// true
	// id empty
	// <nil>
}

func ExampleFingerprint() {
	fp := eos.Fingerprint(eos.Message{ID: eos.NewID(), Key: "order-42", Payload: []byte(`{"total":12}`)})
	fmt.Println(len(fp), len(fp) == eos.FingerprintSize)
	// Output:
	// 16 true
}

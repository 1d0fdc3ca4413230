package eos_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/eoskit/eos"
)

func TestStoreErrorMatchesSentinelAndCause(t *testing.T) {
	for _, cause := range []error{sql.ErrConnDone, context.DeadlineExceeded, io.ErrUnexpectedEOF} {
		var err error = &eos.StoreError{Op: "inbox.claim", Err: cause}
		if !errors.Is(err, eos.ErrStore) {
			t.Errorf("errors.Is(%v, ErrStore) = false", err)
		}
		if !errors.Is(err, cause) {
			t.Errorf("errors.Is(%v, %v) = false", err, cause)
		}
		if errors.Is(err, eos.ErrInvalidMessage) || errors.Is(err, eos.ErrInvalidConfig) {
			t.Errorf("%v matches an unrelated sentinel", err)
		}
		if want := "eos: store failure in inbox.claim: " + cause.Error(); err.Error() != want {
			t.Errorf("Error() = %q, want %q", err.Error(), want)
		}

		// Still matches both when wrapped further.
		wrapped := fmt.Errorf("relay: %w", err)
		if !errors.Is(wrapped, eos.ErrStore) || !errors.Is(wrapped, cause) {
			t.Errorf("wrapped %v lost a match", wrapped)
		}
		var se *eos.StoreError
		if !errors.As(wrapped, &se) || se.Op != "inbox.claim" || se.Err != cause {
			t.Errorf("errors.As(wrapped, *StoreError) = %v, %+v", se != nil, se)
		}
	}
}

type codeError struct{ code int }

func (e *codeError) Error() string { return fmt.Sprintf("code %d", e.code) }

func TestStoreErrorAsCause(t *testing.T) {
	err := error(&eos.StoreError{Op: "outbox.relay", Err: fmt.Errorf("exec: %w", &codeError{40001})})
	var ce *codeError
	if !errors.As(err, &ce) || ce.code != 40001 {
		t.Fatalf("errors.As through StoreError to cause failed: %v", err)
	}
	if !strings.Contains(err.Error(), "outbox.relay") || !strings.Contains(err.Error(), "code 40001") {
		t.Fatalf("Error() = %q", err.Error())
	}
}

func TestStoreErrorNilCause(t *testing.T) {
	// A nil cause must not break errors.Is (errors.Is skips nil entries).
	err := error(&eos.StoreError{Op: "x"})
	if !errors.Is(err, eos.ErrStore) {
		t.Fatal("StoreError with nil cause does not match ErrStore")
	}
	_ = err.Error()
}

func TestValidationAndConfigErrorText(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{&eos.ValidationError{Field: eos.FieldID, Reason: "empty"}, "eos: invalid message: id: empty"},
		{&eos.ValidationError{Field: eos.FieldHeader, Name: "X", Reason: "bad"}, `eos: invalid message: header "X": bad`},
		{&eos.ValidationError{Field: eos.FieldHeader, Reason: "empty name"}, "eos: invalid message: header: empty name"},
		{&eos.ConfigError{Field: "inbox.Config.Retention", Reason: "negative"}, "eos: invalid configuration: inbox.Config.Retention: negative"},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
	if !errors.Is(cases[0].err, eos.ErrInvalidMessage) || !errors.Is(cases[3].err, eos.ErrInvalidConfig) {
		t.Error("sentinel not matched")
	}
}

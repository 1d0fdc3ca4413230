package httpidem

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// The problem types of the responses the middleware writes itself (RFC
// 9457). Each URI resolves to this constant's documentation.
const (
	problemBase = "https://pkg.go.dev/github.com/eoskit/eos/httpidem#"
	// ProblemKeyMissing (400): the route requires an Idempotency-Key and
	// the request has none.
	ProblemKeyMissing = problemBase + "ProblemKeyMissing"
	// ProblemKeyInvalid (400): the Idempotency-Key is not a String of 1 to
	// 255 printable characters, or the field was sent more than once.
	ProblemKeyInvalid = problemBase + "ProblemKeyInvalid"
	// ProblemKeyReused (422): the key was first used by a different request
	// (method, route, body or fingerprinted headers). Send the original
	// request to get its response, or use a new key for a new request.
	ProblemKeyReused = problemBase + "ProblemKeyReused"
	// ProblemInProgress (409): the first request with this key is still
	// being processed. Retry the same request after Retry-After seconds.
	ProblemInProgress = problemBase + "ProblemInProgress"
	// ProblemBodyTooLarge (413): the body is larger than the middleware
	// reads to fingerprint a request.
	ProblemBodyTooLarge = problemBase + "ProblemBodyTooLarge"
	// ProblemStoreUnavailable (503): the key store failed, so the request
	// was not processed (the middleware fails closed). Retry the same
	// request.
	ProblemStoreUnavailable = problemBase + "ProblemStoreUnavailable"
	// ProblemUnprocessed (500): the request was not processed, or its
	// writes were rolled back (the response could not be stored, the
	// handler failed). Retrying the same request is safe.
	ProblemUnprocessed = problemBase + "ProblemUnprocessed"
)

// Problem is an RFC 9457 problem detail. A Config.Scope function may
// return one (as its error) to answer the request with it.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up).
	RetryAfter time.Duration `json:"-"`
}

func (p *Problem) Error() string {
	if p.Detail == "" {
		return "httpidem: " + p.Title
	}
	return "httpidem: " + p.Title + ": " + p.Detail
}

// write sends p as application/problem+json. It is never cached: the
// same request may well get another answer later.
func (p *Problem) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(retryAfterSeconds(p.RetryAfter), 10))
	}
	b, _ := json.Marshal(p) // strings and an int: cannot fail
	w.WriteHeader(p.Status)
	w.Write(append(b, '\n'))
}

// retryAfterSeconds rounds d up to whole seconds, at least 1: Retry-After
// has no finer unit, and 0 would invite an immediate retry.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

func problemKeyMissing() *Problem {
	return &Problem{Type: ProblemKeyMissing, Title: "Idempotency-Key is missing", Status: http.StatusBadRequest,
		Detail: `This operation requires an Idempotency-Key header: a String such as "8e03978e-40d5-43e8-bc93-6894a57f9324", unique per operation.`}
}

func problemKeyInvalid(reason string) *Problem {
	return &Problem{Type: ProblemKeyInvalid, Title: "Idempotency-Key is invalid", Status: http.StatusBadRequest, Detail: reason}
}

func problemKeyReused() *Problem {
	return &Problem{Type: ProblemKeyReused, Title: "Idempotency-Key is already used for another request", Status: http.StatusUnprocessableEntity,
		Detail: "This key was first sent with a different request; a key must not be reused across different requests."}
}

func problemInProgress(after time.Duration) *Problem {
	return &Problem{Type: ProblemInProgress, Title: "A request with this Idempotency-Key is in progress", Status: http.StatusConflict,
		Detail: "The first request with this key is still being processed; retry the same request later.", RetryAfter: after}
}

func problemBodyTooLarge(limit int64) *Problem {
	return &Problem{Type: ProblemBodyTooLarge, Title: "Request body too large", Status: http.StatusRequestEntityTooLarge,
		Detail: "The body exceeds " + strconv.FormatInt(limit, 10) + " bytes."}
}

func problemStore() *Problem {
	return &Problem{Type: ProblemStoreUnavailable, Title: "Idempotency store unavailable", Status: http.StatusServiceUnavailable,
		Detail: "The request was not processed; retry it with the same key.", RetryAfter: time.Second}
}

func problemUnprocessed(detail string) *Problem {
	return &Problem{Type: ProblemUnprocessed, Title: "Request not processed", Status: http.StatusInternalServerError, Detail: detail}
}

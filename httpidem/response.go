package httpidem

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
)

// resultVersion leads every stored response, so that a later encoding can
// be told apart from this one.
const resultVersion = 1

// errCorrupt reports a stored result that does not decode.
var errCorrupt = errors.New("httpidem: stored response does not decode")

// response is what a retry is answered with.
type response struct {
	status int
	header http.Header // only the stored fields
	body   []byte
}

// encode lays r out as: version byte, status (uint16), the number of
// header values, each as name and value (uvarint length + bytes), then
// the body to the end.
func (r response) encode() []byte {
	b := []byte{resultVersion}
	b = binary.BigEndian.AppendUint16(b, uint16(r.status))
	n := 0
	for _, vs := range r.header {
		n += len(vs)
	}
	b = binary.AppendUvarint(b, uint64(n))
	for name, vs := range r.header {
		for _, v := range vs {
			b = appendString(b, name)
			b = appendString(b, v)
		}
	}
	return append(b, r.body...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func decodeResponse(b []byte) (response, error) {
	if len(b) < 3 || b[0] != resultVersion {
		return response{}, errCorrupt
	}
	r := response{status: int(binary.BigEndian.Uint16(b[1:3])), header: http.Header{}}
	rd := bytes.NewReader(b[3:])
	n, err := binary.ReadUvarint(rd)
	if err != nil || n > uint64(rd.Len()) {
		return response{}, errCorrupt
	}
	for range n {
		name, err1 := readString(rd)
		value, err2 := readString(rd)
		if err1 != nil || err2 != nil {
			return response{}, errCorrupt
		}
		r.header[name] = append(r.header[name], value)
	}
	r.body = b[len(b)-rd.Len():]
	return r, nil
}

func readString(rd *bytes.Reader) (string, error) {
	n, err := binary.ReadUvarint(rd)
	if err != nil || n > uint64(rd.Len()) {
		return "", errCorrupt
	}
	s := make([]byte, n)
	rd.Read(s)
	return string(s), nil
}

// capture is the ResponseWriter the handler writes to. It keeps the
// status, the headers and up to limit bytes of body, so that the response
// can be stored before the client sees it: a client that has its answer
// must find it stored when it retries.
//
// Beyond limit, with passThrough set, capture sends what it holds and
// every later write straight to the client (the response cannot be
// stored; the key is released). Without passThrough (the Tx middleware,
// which must store the response with the commit or roll back), it drops
// the rest and reports overflow.
//
// capture does not implement http.Flusher: a handler that streams cannot
// have its response stored.
type capture struct {
	w           http.ResponseWriter
	header      http.Header
	status      int
	body        bytes.Buffer
	limit       int
	passThrough bool
	overflow    bool
}

func newCapture(w http.ResponseWriter, limit int, passThrough bool) *capture {
	return &capture{w: w, header: http.Header{}, limit: limit, passThrough: passThrough}
}

func (c *capture) Header() http.Header { return c.header }

// WriteHeader records the first final status; informational ones (1xx)
// are dropped, as a replay could not repeat them.
func (c *capture) WriteHeader(status int) {
	if c.status != 0 || status < 200 {
		return
	}
	c.status = status
}

func (c *capture) Write(p []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	switch {
	case c.overflow && c.passThrough:
		return c.w.Write(p)
	case c.overflow:
		return len(p), nil
	case c.body.Len()+len(p) <= c.limit:
		return c.body.Write(p)
	}
	c.overflow = true
	if !c.passThrough {
		return len(p), nil
	}
	c.send()
	return c.w.Write(p)
}

// statusCode is the response's status: 200 when the handler wrote
// nothing, as net/http would send.
func (c *capture) statusCode() int {
	if c.status == 0 {
		return http.StatusOK
	}
	return c.status
}

// send writes the captured response to the client, all of its headers
// included (the stored copy keeps only some).
func (c *capture) send() {
	h := c.w.Header()
	for k, vs := range c.header {
		h[k] = vs
	}
	c.w.WriteHeader(c.statusCode())
	c.w.Write(c.body.Bytes())
}

// stored is the response as kept for retries: its status, the headers
// named in keep (when present) and its body.
func (c *capture) stored(keep []string) response {
	r := response{status: c.statusCode(), header: http.Header{}, body: c.body.Bytes()}
	for _, k := range keep {
		if vs := c.header[k]; len(vs) > 0 {
			r.header[k] = vs
		}
	}
	return r
}

// replay answers a retry with r, marked as a replay.
func replay(w http.ResponseWriter, r response) {
	h := w.Header()
	for k, vs := range r.header {
		h[k] = vs
	}
	h.Set("Idempotent-Replayed", "true")
	w.WriteHeader(r.status)
	w.Write(r.body)
}

package collector

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// mode is how a request carries its event(s).
type mode int

const (
	modeStructured mode = iota + 1
	modeBinary
	modeBatch
)

func (m mode) String() string {
	switch m {
	case modeStructured:
		return "structured"
	case modeBinary:
		return "binary"
	case modeBatch:
		return "batch"
	}
	return "unknown"
}

// Media types of the CloudEvents HTTP binding with the JSON format.
const (
	mediaStructured = "application/cloudevents+json"
	mediaBatch      = "application/cloudevents-batch+json"
)

var errMediaType = errors.New("unsupported media type")

// requestMode picks the mode as the HTTP binding says: a CloudEvents media
// type means structured or batch; otherwise a ce-specversion header means
// binary, whose Content-Type is the data's (journey's data is JSON).
func requestMode(h http.Header) (mode, error) {
	ct := h.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if ct != "" && err != nil {
		return 0, fmt.Errorf("%w: cannot parse Content-Type %q", errMediaType, trunc(ct))
	}
	if mt == mediaStructured || mt == mediaBatch {
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return 0, fmt.Errorf("%w: charset must be utf-8, got %q", errMediaType, trunc(cs))
		}
		if mt == mediaBatch {
			return modeBatch, nil
		}
		return modeStructured, nil
	}
	if strings.HasPrefix(mt, "application/cloudevents") {
		return 0, fmt.Errorf("%w: only the JSON event format is supported, got %q", errMediaType, trunc(mt))
	}
	if h.Get("ce-specversion") != "" {
		if ct != "" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			return 0, fmt.Errorf("%w: binary-mode data must be application/json, got %q", errMediaType, trunc(mt))
		}
		return modeBinary, nil
	}
	return 0, fmt.Errorf("%w: send %s, %s, or binary mode (ce- headers); got Content-Type %q", errMediaType, mediaStructured, mediaBatch, trunc(ct))
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// handleEvents serves POST /v1/events.
func (c *Collector) handleEvents(w http.ResponseWriter, r *http.Request) {
	code := c.serveEvents(w, r)
	c.m.request("events", code)
}

// admit takes one of the in-flight request slots without waiting: a
// collector over its limit answers 503 at once rather than queue
// requests it may not finish in time. release gives the slot back.
func (c *Collector) admit() bool {
	select {
	case c.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

func (c *Collector) release() { <-c.sem }

// refuseBusy answers 503 with the Retry-After the collector is set to.
func (c *Collector) refuseBusy(w http.ResponseWriter) int {
	retryAfter(w, c.s.RetryAfter)
	return c.refuse(w, http.StatusServiceUnavailable, ReasonBusy, "too many requests in flight; retry later")
}

func (c *Collector) serveEvents(w http.ResponseWriter, r *http.Request) int {
	if !c.admit() {
		return c.refuseBusy(w)
	}
	defer c.release()
	c.m.inFlight.Inc()
	defer c.m.inFlight.Dec()

	if msg := c.checkHeaders(r.Header); msg != "" {
		return c.refuse(w, http.StatusRequestHeaderFieldsTooLarge, ReasonHeaders, msg)
	}
	tok := c.authenticate(r)
	if tok == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="journey"`)
		return c.refuse(w, http.StatusUnauthorized, ReasonUnauthorized, "send Authorization: Bearer <token> with a configured token")
	}
	md, err := requestMode(r.Header)
	if err != nil {
		return c.refuse(w, http.StatusUnsupportedMediaType, ReasonMediaType, err.Error())
	}
	limit := int64(c.s.MaxEventBytes)
	if md == modeBatch {
		limit = c.s.MaxRequestBytes
	}
	buf := c.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 2*int(c.s.MaxRequestBytes) {
			c.bufs.Put(buf)
		}
	}()
	if code, msg := readBody(w, r, limit, buf); code != 0 {
		if code == http.StatusRequestEntityTooLarge {
			msg = fmt.Sprintf("the %s body is larger than %d bytes", md, limit)
			return c.refuse(w, code, ReasonTooLarge, msg)
		}
		return c.refuse(w, code, ReasonMalformed, msg)
	}
	body := buf.Bytes()

	if md == modeBatch {
		return c.serveBatch(w, tok, body)
	}
	var e touchpoint.Event
	if md == modeBinary {
		tolerateStrayPercent(r.Header)
		// The body buffer goes back to a pool when the request ends, but
		// the JetStream client may still resend a message after a
		// no-responders reply; the event must own its data.
		e, err = touchpoint.FromBinary(r.Header, bytes.Clone(body), true)
	} else {
		e, err = touchpoint.UnmarshalStructured(body)
	}
	if retry, ok := c.allow(tok, 1); !ok {
		retryAfter(w, retry)
		return c.refuse(w, http.StatusTooManyRequests, ReasonRateLimited, "over this token's rate limit; retry after the Retry-After seconds")
	}
	res := c.check(tok, &e, err)
	if res.Status == StatusRejected {
		writeJSON(w, res.Code, res)
		return res.Code
	}
	return c.publishOne(w, &e, res)
}

// publishOne publishes one validated event and answers with its result:
// 202 when it is stored (or was already), else the result's own status,
// with Retry-After when the stream could not take it.
func (c *Collector) publishOne(w http.ResponseWriter, e *touchpoint.Event, res Result) int {
	results := []Result{res}
	c.publish([]*touchpoint.Event{e}, results, []int{0})
	res = results[0]
	if res.Status != StatusAccepted && res.Status != StatusDuplicate {
		if res.Status == StatusFailed {
			retryAfter(w, c.s.RetryAfter)
		}
		writeJSON(w, res.Code, res)
		return res.Code
	}
	writeJSON(w, http.StatusAccepted, res)
	return http.StatusAccepted
}

// serveBatch validates every event of a batch, publishes the valid ones and
// answers with one result per event, in order. The overall status:
//   - 503 if any valid event could not be stored (resend the whole batch:
//     the stored ones come back as duplicates);
//   - 202 if the batch is empty or at least one event was stored;
//   - otherwise (every event refused) the refusals' common code, or 400
//     when they differ.
func (c *Collector) serveBatch(w http.ResponseWriter, tok *token, body []byte) int {
	p := c.parsers.Get()
	defer c.parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err == nil {
		// fastjson tolerates raw control characters and bad escapes in
		// strings; JSON (and structured mode) does not.
		err = touchpoint.CheckJSON(body)
	}
	if err != nil {
		return c.refuse(w, http.StatusBadRequest, ReasonMalformed, "the batch is not valid JSON: "+err.Error())
	}
	arr, err := v.Array()
	if err != nil {
		return c.refuse(w, http.StatusBadRequest, ReasonMalformed, "a batch must be a JSON array of events, got "+v.Type().String())
	}
	if len(arr) > c.s.MaxBatchEvents {
		return c.refuse(w, http.StatusRequestEntityTooLarge, ReasonTooLarge,
			fmt.Sprintf("the batch has %d events; at most %d are allowed", len(arr), c.s.MaxBatchEvents))
	}
	c.m.batch.Observe(float64(len(arr)))
	if retry, ok := c.allow(tok, len(arr)); !ok {
		retryAfter(w, retry)
		return c.refuse(w, http.StatusTooManyRequests, ReasonRateLimited, "over this token's rate limit; retry after the Retry-After seconds")
	}
	resp := BatchResponse{Results: make([]Result, len(arr))}
	events := make([]touchpoint.Event, len(arr))
	valid := make([]*touchpoint.Event, 0, len(arr))
	idx := make([]int, 0, len(arr))
	for i, ev := range arr {
		events[i], err = touchpoint.FromJSONValue(ev)
		res := c.check(tok, &events[i], err)
		if res.Status != StatusRejected && eventSize(&events[i]) > c.s.MaxEventBytes {
			res = c.reject(&events[i], http.StatusRequestEntityTooLarge, ReasonTooLarge,
				fmt.Sprintf("the event is larger than %d bytes", c.s.MaxEventBytes), nil)
		}
		resp.Results[i] = res
		if res.Status != StatusRejected {
			valid = append(valid, &events[i])
			idx = append(idx, i)
		}
	}
	c.publish(valid, resp.Results, idx)
	commonCode := 0
	for i := range resp.Results {
		n := i
		resp.Results[i].Index = &n
		switch resp.Results[i].Status {
		case StatusAccepted:
			resp.Accepted++
		case StatusDuplicate:
			resp.Duplicates++
		case StatusFailed:
			resp.Failed++
		case StatusRejected:
			resp.Rejected++
			switch commonCode {
			case 0:
				commonCode = resp.Results[i].Code
			case resp.Results[i].Code:
			default:
				commonCode = http.StatusBadRequest
			}
		}
	}
	code := http.StatusAccepted
	switch {
	case resp.Failed > 0:
		code = http.StatusServiceUnavailable
		retryAfter(w, c.s.RetryAfter)
	case resp.Accepted+resp.Duplicates == 0 && resp.Rejected > 0:
		code = commonCode
	}
	writeJSON(w, code, resp)
	return code
}

// readBody reads at most limit bytes of the body into buf. It returns 413
// for a larger body (checked against Content-Length first, so an honest
// oversized request is refused without reading it) and 400 for a broken one.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, buf *bytes.Buffer) (int, string) {
	if r.ContentLength > limit {
		return http.StatusRequestEntityTooLarge, ""
	}
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return http.StatusRequestEntityTooLarge, ""
		}
		return http.StatusBadRequest, "could not read the body: " + err.Error()
	}
	return 0, ""
}

// checkHeaders enforces the header count and size limits; the server's own
// 64 KiB cap on the header block stops worse before the handler runs.
func (c *Collector) checkHeaders(h http.Header) string {
	n, size := 0, 0
	for k, vs := range h {
		for _, v := range vs {
			n++
			size += len(k) + len(v) + 4
		}
	}
	switch {
	case n > c.s.MaxHeaders:
		return "the request has " + strconv.Itoa(n) + " header values; at most " + strconv.Itoa(c.s.MaxHeaders) + " are allowed"
	case size > c.s.MaxHeaderBytes:
		return "the headers take " + strconv.Itoa(size) + " bytes; at most " + strconv.Itoa(c.s.MaxHeaderBytes) + " are allowed"
	}
	return ""
}

func (c *Collector) authenticate(r *http.Request) *token {
	plain, ok := bearer(r.Header.Get("Authorization"))
	if !ok || plain == "" {
		return nil
	}
	return c.tokens.lookup(plain)
}

// allow takes n events from the token's rate budget, or says how long to
// wait; a refused request takes nothing.
func (c *Collector) allow(tok *token, n int) (time.Duration, bool) {
	if tok.limiter == nil || n == 0 {
		return 0, true
	}
	now := c.now()
	res := tok.limiter.ReserveN(now, n)
	if !res.OK() {
		return c.s.RetryAfter, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// check decides whether a decoded event may be published: the token must
// cover its source (403), and it must satisfy the contract (400). decodeErr
// is the decoder's verdict; when it only concerns attributes (no
// specversion, a bad time) the event is validated too, so the answer lists
// every broken rule at once instead of one per round trip.
func (c *Collector) check(tok *token, e *touchpoint.Event, decodeErr error) Result {
	if e.Source != "" && !tok.allows(e.Source) {
		return c.reject(e, http.StatusForbidden, ReasonForbidden, "this token may not send events with source "+strconv.Quote(trunc(e.Source)), nil)
	}
	if err := c.supp.Load().Check(e.Subject); err != nil {
		return c.reject(e, http.StatusUnprocessableEntity, ReasonErased, err.Error()+"; stop sending them (docs/privacy.md)", nil)
	}
	var fields []touchpoint.FieldError
	reason := ""
	if decodeErr != nil {
		var ve *touchpoint.ValidationError
		if !errors.As(decodeErr, &ve) || !errors.Is(decodeErr, touchpoint.ErrInvalid) {
			return c.reject(e, http.StatusBadRequest, reasonOf(decodeErr), decodeErr.Error(), nil)
		}
		fields, reason = ve.Errors, ReasonInvalid
	}
	if _, err := touchpoint.Validate(e, c.now()); err != nil {
		var ve *touchpoint.ValidationError
		if !errors.As(err, &ve) {
			return c.reject(e, http.StatusBadRequest, reasonOf(err), err.Error(), fields)
		}
		if reason == "" || errors.Is(err, touchpoint.ErrUnknownType) {
			reason = reasonOf(err)
		}
		// The decoder's complaint about a field (time: format) stands; the
		// validator's about the same field (time: required) would repeat it.
		flagged := make(map[string]bool, len(fields))
		for _, fe := range fields {
			flagged[fe.Field] = true
		}
		for _, fe := range ve.Errors {
			if !flagged[fe.Field] {
				fields = append(fields, fe)
			}
		}
	}
	if reason == "" {
		// Accepted as sent; stored (published) minimised, as configured.
		if _, err := c.s.Minimise.Apply(e); err != nil {
			return c.reject(e, http.StatusBadRequest, ReasonInvalid, err.Error(), nil)
		}
		return Result{ID: e.ID, Source: e.Source, Status: StatusAccepted}
	}
	var msg strings.Builder
	msg.WriteString("invalid event")
	for i, fe := range fields {
		if i == 0 {
			msg.WriteString(": ")
		} else {
			msg.WriteString("; ")
		}
		msg.WriteString(fe.Error())
	}
	return c.reject(e, http.StatusBadRequest, reason, msg.String(), fields)
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, touchpoint.ErrUnknownType):
		return ReasonUnknownType
	case errors.Is(err, touchpoint.ErrMalformed):
		return ReasonMalformed
	}
	return ReasonInvalid
}

func (c *Collector) reject(e *touchpoint.Event, code int, reason, msg string, fields []touchpoint.FieldError) Result {
	c.m.events.WithLabelValues(kindLabel(e), StatusRejected, reason).Inc()
	return Result{ID: e.ID, Source: e.Source, Status: StatusRejected, Code: code, Error: reason, Message: msg, Errors: fields}
}

func (c *Collector) refuse(w http.ResponseWriter, code int, reason, msg string) int {
	writeJSON(w, code, ErrorBody{Error: reason, Message: msg})
	return code
}

func kindLabel(e *touchpoint.Event) string {
	if k, ok := touchpoint.KindOf(e.Type); ok {
		return string(k)
	}
	return "unknown"
}

// eventSize approximates an event's size in the structured encoding, the
// measure of the per-event limit inside a batch.
func eventSize(e *touchpoint.Event) int {
	n := 128 + len(e.ID) + len(e.Source) + len(e.Type) + len(e.Subject) + len(e.DataContentType) + len(e.DataSchema) + len(e.Data)
	for k, v := range e.Extensions {
		n += len(k) + len(v) + 6
	}
	return n
}

// tolerateStrayPercent escapes a '%' that does not start a valid escape in
// a ce- header, so that percent-decoding keeps it as is. The binding says
// senders percent-encode, but sdk-go (and most hand-written senders) put
// values such as "50% off" in headers verbatim; refusing them would refuse
// the very clients the collector exists for. A valid escape ("%20") is
// decoded as the binding requires.
func tolerateStrayPercent(h http.Header) {
	for k, vs := range h {
		if len(vs) == 0 || len(k) < 3 || !strings.EqualFold(k[:3], "ce-") || strings.IndexByte(vs[0], '%') < 0 {
			continue
		}
		v := vs[0]
		var b strings.Builder
		changed := false
		for i := 0; i < len(v); i++ {
			if v[i] == '%' && (i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2])) {
				b.WriteString("%25")
				changed = true
				continue
			}
			b.WriteByte(v[i])
		}
		if changed {
			h[k] = []string{b.String()}
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

package conformance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"
)

// finding is one misbehaviour a check saw: an error that also says which
// deviation it shows, so that the run's summary names each deviation once
// however many checks saw it.
type finding struct {
	// key names the deviation across checks (see [Deviation.ID]); "" for
	// a deviation of the check's own subject.
	key string
	// title describes the deviation in one line; "" for the check's own.
	title string
	// req and anchor are the requirement and the spec clause broken;
	// empty for the check's own.
	req    Requirement
	anchor string
	// aspect is the part of x the finding judges; the validator's
	// complaints about the same aspect of x are then left out.
	aspect aspect
	// x is the exchange that shows the deviation (nil when none does).
	x *Exchange
	// observed and expected complete the one-line reproduction.
	observed, expected string
	// err is the full message.
	err error
}

func (f *finding) Error() string { return f.err.Error() }
func (f *finding) Unwrap() error { return f.err }

// ownFinding is a misbehaviour of the check's own subject seen in x.
func ownFinding(x *Exchange, a aspect, observed, expected string, err error) *finding {
	return &finding{x: x, aspect: a, observed: observed, expected: expected, err: err}
}

// collect walks err (joined and wrapped errors) and returns its findings
// and the errors that hold no finding, in order. tops holds, for each
// finding, the error it was reported as: the element of the join (or err
// itself) whose chain holds it, whose message gives its context.
func collect(err error) (fs []*finding, tops []error, plain []error) {
	var walk func(err, top error)
	walk = func(err, top error) {
		if err == nil {
			return
		}
		if f, ok := err.(*finding); ok {
			fs, tops = append(fs, f), append(tops, top)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e, e)
			}
			return
		case interface{ Unwrap() error }:
			n := len(fs)
			walk(u.Unwrap(), top)
			if len(fs) > n {
				return
			}
		}
		plain = append(plain, err)
	}
	walk(err, err)
	return fs, tops, plain
}

// statusText lists status codes as "200 or 204".
func statusText(codes []int) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = fmt.Sprint(c)
	}
	return strings.Join(s, " or ")
}

func success(status int) bool { return status/100 == 2 }

// opID names x's operation, or its method and path when it matched none.
func (x *Exchange) opID() string {
	if x.Operation != "" {
		return x.Operation
	}
	return x.Method + " " + x.URL
}

// opName is x's method and path template, or its method and URL.
func (x *Exchange) opName() string {
	if x.op.name != "" {
		return x.op.name
	}
	return x.Method + " " + x.URL
}

// statusFinding is the finding of an answer with status other than codes.
// A success answered with another success status is a deviation of the
// operation (named the same by the validator); anything else is the
// check's own.
func statusFinding(x *Exchange, codes []int) *finding {
	err := fmt.Errorf("status %d, want %s\n%s", x.Status, statusText(codes), x)
	f := ownFinding(x, aspectStatus, fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)), "status "+statusText(codes), err)
	if success(x.Status) && slices.ContainsFunc(codes, success) {
		f.key, f.req, f.anchor = statusKey(x.opID(), x.Status), Must, x.op.anchor+"/responses"
		f.title = fmt.Sprintf("%s answers %d on success, want %s", x.opName(), x.Status, statusText(codes))
	}
	return f
}

// expectStatus returns an error unless x's status is one of codes.
func expectStatus(x *Exchange, codes ...int) error {
	if slices.Contains(codes, x.Status) {
		return nil
	}
	return statusFinding(x, codes)
}

// expectSuccess is the tolerant status check of set-up steps: any 2xx
// answer will do. Anything else is a deviation of the operation.
func expectSuccess(x *Exchange) error {
	if success(x.Status) {
		return nil
	}
	return &finding{
		key: statusKey(x.opID(), x.Status), req: Must, anchor: x.op.anchor + "/responses", aspect: aspectStatus, x: x,
		title:    fmt.Sprintf("%s answers %d where a success was expected", x.opName(), x.Status),
		observed: fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)), expected: "a 2xx success",
		err: fmt.Errorf("status %d, want a success (2xx)\n%s", x.Status, x),
	}
}

// expectJSON checks x's status is code and decodes its JSON body into v.
func expectJSON(x *Exchange, code int, v any) error {
	if err := expectStatus(x, code); err != nil {
		return err
	}
	if err := json.Unmarshal(x.Body, v); err != nil {
		return ownFinding(x, aspectBody, bodyExcerpt(x), "a JSON body", fmt.Errorf("body is not the expected JSON: %w\n%s", err, x))
	}
	return nil
}

// expectError checks that x has one of the status codes and a JSON Error
// body ({"error": "<non-empty message>"}). An error answer is the
// subject of the check asking for it: the validator's complaints about it
// count.
func expectError(x *Exchange, codes ...int) error {
	if err := expectStatus(x, codes...); err != nil {
		return err // the body of an answer with another status is not judged
	}
	x.judge()
	return expectErrorBody(x)
}

// expectErrorBody checks that x's body is a JSON Error.
func expectErrorBody(x *Exchange) error {
	var body struct {
		Error *string `json:"error"`
	}
	bad := func(err error) error {
		return &finding{
			key: errorBodyKey(x.Status), title: errorBodyTitle(x.Status), req: Must, anchor: anchorError, aspect: aspectBody, x: x,
			observed: fmt.Sprintf("%q %s", x.Header.Get("Content-Type"), bodyExcerpt(x)), expected: `application/json {"error": "<message>"}`,
			err: err,
		}
	}
	if !strings.HasPrefix(x.Header.Get("Content-Type"), "application/json") {
		return bad(fmt.Errorf("error body has Content-Type %q, want application/json\n%s", x.Header.Get("Content-Type"), x))
	}
	if err := json.Unmarshal(x.Body, &body); err != nil || body.Error == nil || *body.Error == "" {
		return bad(fmt.Errorf("body is not a JSON Error {\"error\": \"<message>\"}\n%s", x))
	}
	return nil
}

// expectUnknown checks the answer to a request naming a sandbox that does
// not exist (never created, deleted or expired): a 404 JSON Error. Any
// other answer is the deviation "unknown sandbox", wherever it is seen.
func expectUnknown(x *Exchange) error {
	if x.Status != http.StatusNotFound {
		return &finding{
			key: keyUnknownSandbox, req: Must, anchor: x.op.anchor + "/responses/404", aspect: aspectStatus, x: x,
			title:    "a request naming a sandbox that does not exist is not answered 404 (the backend creates it implicitly or ignores the session id)",
			observed: fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x)), expected: "404 JSON Error",
			err: fmt.Errorf("status %d for a sandbox that does not exist, want 404\n%s", x.Status, x),
		}
	}
	x.judge()
	return expectErrorBody(x)
}

// want compares one field of an exec result; a difference is a finding
// of the check's own subject.
func want[T comparable](errs *[]error, what string, got, want T, x *Exchange) {
	if got != want {
		*errs = append(*errs, ownFinding(x, aspectNone, fmt.Sprintf("%s %#v", what, got), fmt.Sprintf("%#v", want),
			fmt.Errorf("%s: got %#v, want %#v\n%s", what, got, want, x)))
	}
}

// bodyExcerpt shows the start of x's response body on one line.
func bodyExcerpt(x *Exchange) string {
	if len(x.Body) == 0 {
		return "(empty body)"
	}
	return clip(showBody(x.Header.Get("Content-Type"), x.Body), 160)
}

// clip keeps s on one line and cuts it to about n bytes.
func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", `\n`)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

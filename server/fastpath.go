package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
)

// The request validator (kin-openapi) finds a request's route with regular
// expressions and walks its decoded body through the schema, for every
// request: a third of the server's CPU for a small exec. The fast path
// below answers one question cheaply, "does the contract certainly accept
// this request?", from checks compiled once from the same contract. When
// the answer is yes the request skips the validator; when it is no, or
// the fast path cannot tell, the validator runs as before and words the
// error. So a fast path can only ever let through what the validator lets
// through, and every error message stays the validator's.

// check reports whether a JSON value decoded with UseNumber certainly
// satisfies a schema.
type check func(v any) bool

// fastOp is an operation whose request the fast path can judge.
type fastOp struct {
	params map[string]check // its path parameters
	body   check            // its application/json body; nil without one
}

// fastRoute is a path of the contract: its segments ("{name}" for a
// parameter) and its operations by method, nil for those the fast path
// cannot judge.
type fastRoute struct {
	segs []string
	ops  map[string]*fastOp
}

// fastRoutes is every path of the contract.
type fastRoutes []fastRoute

// maxFastDepth bounds the nesting of the schemas compiled (the contract's
// request bodies are shallow).
const maxFastDepth = 8

// compileFastRoutes compiles the checks of every operation whose request
// the fast path can judge: path parameters only (no query, header or
// cookie parameters), and no body or an application/json one, each
// described only with the schema keywords compileSchema knows.
func compileFastRoutes(spec *openapi3.T) fastRoutes {
	var routes fastRoutes
	for path, item := range spec.Paths.Map() {
		rt := fastRoute{segs: strings.Split(strings.TrimPrefix(path, "/"), "/"), ops: map[string]*fastOp{}}
		for method, op := range item.Operations() {
			rt.ops[method] = compileOp(item, op)
		}
		routes = append(routes, rt)
	}
	return routes
}

// compileOp returns the checks of op at item, or nil when the fast path
// cannot judge its requests.
func compileOp(item *openapi3.PathItem, op *openapi3.Operation) *fastOp {
	f := &fastOp{params: map[string]check{}}
	for _, p := range slices.Concat(item.Parameters, op.Parameters) {
		if p.Value == nil || p.Value.In != openapi3.ParameterInPath || p.Value.Schema == nil || p.Value.Content != nil {
			return nil
		}
		c, ok := compileSchema(p.Value.Schema, 0)
		if !ok {
			return nil
		}
		f.params[p.Value.Name] = c
	}
	if rb := op.RequestBody; rb != nil {
		if rb.Value == nil || len(rb.Value.Content) != 1 || rb.Value.Content["application/json"] == nil {
			return nil
		}
		mt := rb.Value.Content["application/json"]
		if mt.Schema == nil || len(mt.Encoding) > 0 {
			return nil
		}
		c, ok := compileSchema(mt.Schema, 0)
		if !ok {
			return nil
		}
		f.body = c // an absent body is for the validator to judge
	}
	return f
}

// match returns the operation that r certainly is, or nil: exactly one
// path of the contract matches r's path, and the fast path can judge its
// operation for r's method.
func (rs fastRoutes) match(r *http.Request) (*fastOp, map[string]string) {
	path := r.URL.Path
	if r.URL.RawPath != "" || !strings.HasPrefix(path, "/") || !plainPath(path) {
		return nil, nil
	}
	segs := strings.Split(path[1:], "/")
	var found *fastRoute
	for i := range rs {
		if rs[i].matches(segs) {
			if found != nil {
				return nil, nil // ambiguous: the validator's router decides
			}
			found = &rs[i]
		}
	}
	if found == nil {
		return nil, nil
	}
	op := found.ops[r.Method]
	if op == nil {
		return nil, nil
	}
	var params map[string]string
	for i, s := range found.segs {
		if name, ok := paramName(s); ok {
			if params == nil {
				params = make(map[string]string, len(op.params))
			}
			params[name] = segs[i]
		}
	}
	return op, params
}

// matches reports whether the segments of a request's path match rt's.
func (rt *fastRoute) matches(segs []string) bool {
	if len(segs) != len(rt.segs) {
		return false
	}
	for i, s := range rt.segs {
		if _, ok := paramName(s); ok {
			if segs[i] == "" {
				return false
			}
		} else if s != segs[i] {
			return false
		}
	}
	return true
}

// paramName returns the parameter a path segment of the contract names.
func paramName(seg string) (string, bool) {
	if len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' {
		return seg[1 : len(seg)-1], true
	}
	return "", false
}

// plainPath reports whether path holds only characters that read the same
// escaped or not ([A-Za-z0-9._~-] and '/'), so that the fast path and the
// validator's router see the same parameters.
func plainPath(path string) bool {
	for i := 0; i < len(path); i++ {
		c := path[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-' || c == '/') {
			return false
		}
	}
	return true
}

// accepts reports whether the contract certainly accepts r, a request for
// op with path parameters params. It reads a JSON body and leaves r.Body
// holding the same bytes (and the same read error, if reading failed).
func (op *fastOp) accepts(r *http.Request, params map[string]string) bool {
	for name, c := range op.params {
		v, ok := params[name]
		if !ok || !c(v) {
			return false
		}
	}
	if op.body == nil {
		return true
	}
	if ct := r.Header.Get("Content-Type"); !strings.EqualFold(strings.TrimSpace(ct), "application/json") {
		return false
	}
	if r.Body == nil || r.Body == http.NoBody {
		return false
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(data), errReader{err}))
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	v, ok := decodeJSONValue(data)
	return ok && op.body(v)
}

// errReader returns err on every read.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// decodeJSONValue decodes data, one JSON value and nothing after it but
// white space, as the validator does (numbers as json.Number).
func decodeJSONValue(data []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) != 0 {
		return nil, false
	}
	return v, true
}

// errUnsupported marks a schema keyword the fast path does not know.
var errUnsupported = errors.New("unsupported")

// compileSchema compiles the checks of a schema, or returns false when it
// uses a keyword compileSchema does not know (the validator then judges).
// Annotations (title, description, default, example, deprecated, x-*)
// are ignored: the validator does not set defaults (SkipSettingDefaults).
func compileSchema(ref *openapi3.SchemaRef, depth int) (check, bool) {
	if ref == nil || ref.Value == nil || depth > maxFastDepth {
		return nil, false
	}
	s := *ref.Value // what is left once known keywords are taken out must be empty
	s.Extensions, s.Origin, s.Title, s.Description, s.Default, s.Example, s.ExternalDocs, s.Deprecated = nil, nil, "", "", nil, nil, nil, false
	nullable := s.Nullable
	s.Nullable = false
	var checks []check
	for _, m := range s.AllOf {
		c, ok := compileSchema(m, depth+1)
		if !ok {
			return nil, false
		}
		checks = append(checks, c)
	}
	members := len(s.AllOf)
	s.AllOf = nil
	if s.Type != nil {
		types := s.Type.Slice()
		if len(types) != 1 {
			return nil, false
		}
		var c check
		var err error
		switch types[0] {
		case openapi3.TypeString:
			c, err = compileString(&s)
		case openapi3.TypeInteger:
			c, err = compileInteger(&s)
		case openapi3.TypeBoolean:
			c = func(v any) bool { _, ok := v.(bool); return ok }
		case openapi3.TypeArray:
			c, err = compileArray(&s, depth)
		case openapi3.TypeObject:
			c, err = compileObject(&s, depth)
		default:
			return nil, false
		}
		if err != nil {
			return nil, false
		}
		checks = append(checks, c)
		s.Type = nil
	}
	if !reflect.ValueOf(s).IsZero() || len(checks) == 0 {
		return nil, false
	}
	return func(v any) bool {
		if v == nil {
			return nullable && members == 0
		}
		for _, c := range checks {
			if !c(v) {
				return false
			}
		}
		return true
	}, true
}

// compileString takes type string's keywords out of s.
func compileString(s *openapi3.Schema) (check, error) {
	if s.Format != "" || strings.Contains(s.Pattern, `\u`) {
		return nil, errUnsupported
	}
	var enum []string
	for _, e := range s.Enum {
		str, ok := e.(string)
		if !ok {
			return nil, errUnsupported
		}
		enum = append(enum, str)
	}
	var re *regexp.Regexp
	if s.Pattern != "" {
		var err error
		if re, err = regexp.Compile(s.Pattern); err != nil {
			return nil, errUnsupported
		}
	}
	minLen, maxLen := s.MinLength, uint64(math.MaxUint64)
	if s.MaxLength != nil {
		maxLen = *s.MaxLength
	}
	s.Enum, s.Pattern, s.MinLength, s.MaxLength = nil, "", 0, nil
	return func(v any) bool {
		str, ok := v.(string)
		if !ok || enum != nil && !slices.Contains(enum, str) {
			return false
		}
		if n := uint64(utf8.RuneCountInString(str)); n < minLen || n > maxLen {
			return false
		}
		return re == nil || re.MatchString(str)
	}, nil
}

// compileInteger takes type integer's keywords out of s. Only plain
// integer literals within ±2^53 pass, so that no rounding can differ.
func compileInteger(s *openapi3.Schema) (check, error) {
	lo, hi := int64(-1<<53), int64(1<<53)
	switch s.Format {
	case "":
	case "int32":
		lo, hi = math.MinInt32, math.MaxInt32
	case "int64":
	default:
		return nil, errUnsupported
	}
	if s.Min != nil {
		lo = max(lo, int64(math.Ceil(*s.Min)))
	}
	if s.Max != nil {
		hi = min(hi, int64(math.Floor(*s.Max)))
	}
	s.Format, s.Min, s.Max = "", nil, nil
	return func(v any) bool {
		num, ok := v.(json.Number)
		if !ok || strings.ContainsAny(string(num), ".eE+") {
			return false
		}
		n, err := strconv.ParseInt(string(num), 10, 64)
		return err == nil && n >= lo && n <= hi
	}, nil
}

// compileArray takes type array's keywords out of s.
func compileArray(s *openapi3.Schema, depth int) (check, error) {
	items, ok := compileSchema(s.Items, depth+1)
	if !ok {
		return nil, errUnsupported
	}
	minItems, maxItems := s.MinItems, uint64(math.MaxUint64)
	if s.MaxItems != nil {
		maxItems = *s.MaxItems
	}
	s.Items, s.MinItems, s.MaxItems = nil, 0, nil
	return func(v any) bool {
		a, ok := v.([]any)
		if !ok || uint64(len(a)) < minItems || uint64(len(a)) > maxItems {
			return false
		}
		for _, e := range a {
			if !items(e) {
				return false
			}
		}
		return true
	}, nil
}

// compileObject takes type object's keywords out of s.
func compileObject(s *openapi3.Schema, depth int) (check, error) {
	props := make(map[string]check, len(s.Properties))
	for name, p := range s.Properties {
		c, ok := compileSchema(p, depth+1)
		if !ok {
			return nil, errUnsupported
		}
		props[name] = c
	}
	required := s.Required
	extraAllowed := s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has
	var extra check
	if ap := s.AdditionalProperties.Schema; ap != nil {
		c, ok := compileSchema(ap, depth+1)
		if !ok {
			return nil, errUnsupported
		}
		extra = c
	}
	s.Properties, s.Required, s.AdditionalProperties = nil, nil, openapi3.AdditionalProperties{}
	return func(v any) bool {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for _, name := range required {
			if _, ok := m[name]; !ok {
				return false
			}
		}
		for k, e := range m {
			if c, ok := props[k]; ok {
				if !c(e) {
					return false
				}
			} else if !extraAllowed || extra != nil && !extra(e) {
				return false
			}
		}
		return true
	}, nil
}

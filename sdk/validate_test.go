package sdk

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// validatingTransport checks every request the SDK sends against
// api/openapi.yaml (kin-openapi is imported by this test only; the SDK
// itself does not depend on it).
type validatingTransport struct {
	router routers.Router
	next   http.RoundTripper

	mu       sync.Mutex
	errs     []error
	requests int
}

func newValidatingTransport(t *testing.T, next http.RoundTripper) *validatingTransport {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(filepath.Join("..", "api", "openapi.yaml"))
	assertNoErr(t, err)
	assertNoErr(t, doc.Validate(loader.Context))
	doc.Servers = openapi3.Servers{{URL: "http://nox.invalid" + basePath}}
	r, err := gorillamux.NewRouter(doc)
	assertNoErr(t, err)
	return &validatingTransport{router: r, next: next}
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	route, params, err := v.router.FindRoute(req)
	if err == nil {
		in := &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{
				ExcludeRequestBody: req.Header.Get("Content-Type") == "application/x-tar",
				AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			},
		}
		err = openapi3filter.ValidateRequest(context.Background(), in)
	}
	v.mu.Lock()
	v.requests++
	if err != nil {
		v.errs = append(v.errs, fmt.Errorf("%s %s: %w", req.Method, req.URL, err))
	}
	v.mu.Unlock()
	return v.next.RoundTrip(req)
}

// TestRequestsMatchTheContract runs the lifecycle with every request
// validated against the OpenAPI document.
func TestRequestsMatchTheContract(t *testing.T) {
	t.Parallel()
	f := newTestBackend(t)
	vt := newValidatingTransport(t, HandlerTransport(f))
	c, err := New("http://nox.invalid"+basePath, WithTransport(vt), WithToken("t"))
	assertNoErr(t, err)
	lifecycle(t, c, f)
	vt.mu.Lock()
	defer vt.mu.Unlock()
	if vt.requests < 20 {
		t.Errorf("only %d requests validated", vt.requests)
	}
	for _, err := range vt.errs {
		t.Error(err)
	}
}

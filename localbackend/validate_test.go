package localbackend

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/noxrunner/nox/internal/contract"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// validatingTransport checks every response of a known operation against
// the contract (status declared, headers, JSON bodies); tests fail on any
// violation at cleanup. Event streams are checked for status only.
type validatingTransport struct {
	router routers.Router
	mu     sync.Mutex
	errs   []error
}

func newValidatingClient(t testing.TB) *http.Client {
	spec, err := contract.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	spec.Servers = nil
	r, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatal(err)
	}
	v := &validatingTransport{router: r}
	t.Cleanup(func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, err := range v.errs {
			t.Errorf("contract violation: %v", err)
		}
	})
	return &http.Client{Transport: v}
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return resp, nil // no such operation: nothing to check
	}
	var body []byte
	stream := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	if !stream {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{ExcludeRequestBody: true},
		},
		Status: resp.StatusCode,
		Header: resp.Header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
			ExcludeResponseBody:   stream,
		},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		v.mu.Lock()
		v.errs = append(v.errs, fmt.Errorf("%s %s -> %d: %w", req.Method, req.URL.Path, resp.StatusCode, err))
		v.mu.Unlock()
	}
	return resp, nil
}

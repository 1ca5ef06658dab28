// Package contract loads the NoxRunner contract (api/openapi.yaml, embedded
// once by package api) with kin-openapi, for the code that validates traffic
// against it: the server layer's request validator and the conformance
// suite's response checks. It lives apart from package api so that programs
// using only the SDK never link an OpenAPI library.
package contract

import (
	"context"
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/noxrunner/nox/api"
)

// Load parses and validates the contract and returns a fresh document that
// the caller may modify. Servers is cleared so that routers built from it
// match requests to any host.
func Load(ctx context.Context) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(api.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("load contract: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("validate contract: %w", err)
	}
	doc.Servers = nil
	return doc, nil
}

// Package noxapi is generated from api/openapi.yaml: the contract's models
// (types.gen.go), an HTTP client (client.gen.go) and a net/http server
// interface (server.gen.go), each type defined once. Nothing here is edited
// by hand; run `make generate` after changing the contract.
//
// The package imports no OpenAPI library: the contract itself is embedded
// once, by package api, and loaded from there by whatever validates traffic.
package noxapi

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config types.cfg.yaml ../../api/openapi.yaml
//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config client.cfg.yaml ../../api/openapi.yaml
//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config server.cfg.yaml ../../api/openapi.yaml

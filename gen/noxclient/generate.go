// Package noxclient is the HTTP client and models generated from api/openapi.yaml.
package noxclient

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config oapi-codegen.yaml ../../api/openapi.yaml

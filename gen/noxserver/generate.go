// Package noxserver is the server interface, models and embedded spec generated
// from api/openapi.yaml, for backends built on net/http.
package noxserver

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen -config oapi-codegen.yaml ../../api/openapi.yaml

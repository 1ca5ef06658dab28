package conformance_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/conformance"
	"github.com/noxrunner/nox/conformancetest"
)

// TestReferenceBackendConforms certifies the reference backend (package
// server over membackend) with every check of every extension it
// advertises: a token for the auth checks, a limit of concurrent commands
// low enough to saturate. It advertises every extension of the contract
// but network.egress, which a backend running commands on the host cannot
// enforce (the local backend's certification covers it).
func TestReferenceBackendConforms(t *testing.T) {
	srv := reference{token: "conformance-token", maxConcurrentExecs: 4}.serve(t)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/info", nil)
	req.Header.Set("Authorization", "Bearer conformance-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Extensions []string }
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range api.Extensions() {
		if slices.Contains(info.Extensions, x) != (x != api.ExtNetworkEgress) {
			t.Errorf("the reference backend advertises %v: want every extension but %s", info.Extensions, api.ExtNetworkEgress)
			break
		}
	}
	cfg := conformance.NewConfig()
	cfg.BaseURL, cfg.Token = srv.URL, "conformance-token"
	cfg.Profile, cfg.Certify = conformance.ProfileExtended, true
	cfg.Parallelism = 4
	conformancetest.Run(t, cfg)
}

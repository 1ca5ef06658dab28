package conformance_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/noxrunner/nox/conformance"
)

// ExampleRunSuite shows what nox conformance does: run the suite against a
// backend, print the report and exit non-zero unless it is OK.
func ExampleRunSuite() {
	cfg := conformance.NewConfig()
	cfg.BaseURL = "http://127.0.0.1:8080"
	cfg.Level = conformance.LevelRecommended // minimum + recommended
	cfg.SkipSlow = true
	cfg.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	rep, err := conformance.RunSuite(context.Background(), cfg)
	if err != nil { // invalid configuration
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := rep.Write(os.Stdout, "text"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if !rep.OK() {
		os.Exit(1)
	}
}

// ExampleChecks looks up one of the suite's checks.
func ExampleChecks() {
	for _, c := range conformance.Checks() {
		if c.ID == "exec/timeout-kills-process-tree" {
			fmt.Println(c.ID, c.Level, c.Capability == "")
		}
	}
	// Output: exec/timeout-kills-process-tree minimum true
}

// Example_thirdPartyCheck adds a check of a third party's own to the suite
// through Config.ExtraChecks: it names what it covers (the contract's
// healthz operation), how strongly (SHOULD) and where the rule is written,
// and runs beside the suite's checks, under nox conformance, RunSuite and
// conformancetest.Run alike. The backend here is a plain v1 backend that
// serves only /healthz.
func Example_thirdPartyCheck() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "OK")
	}))
	defer backend.Close()

	healthzExactlyOK := conformance.Check{
		ID:          "acme/healthz-exactly-ok",
		Level:       conformance.LevelRecommended,
		Requirement: conformance.Should,
		Operations:  []string{"healthz"},
		Spec:        "GET /healthz: the body is exactly OK, for Acme's load balancers",
		Anchor:      "https://acme.example/backend-rules#healthz",
		Parallel:    true,
		Run: func(ctx context.Context, env *conformance.Env) error {
			x, err := env.Raw(ctx, http.MethodGet, "/healthz", "", nil, false)
			if err != nil {
				return err
			}
			if string(x.Body) != "OK" {
				return fmt.Errorf("body %q, want exactly OK\n%s", x.Body, x)
			}
			return nil
		},
	}

	cfg := conformance.NewConfig()
	cfg.BaseURL = backend.URL
	cfg.Run = "^(health|acme)/" // this backend has nothing else
	cfg.ExtraChecks = []conformance.Check{healthzExactlyOK}
	rep, err := conformance.RunSuite(context.Background(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, res := range rep.Results {
		fmt.Println(res.Status, res.ID, res.Requirement)
	}
	fmt.Println("ok:", rep.OK())
	// Output:
	// pass health/ok MUST
	// pass acme/healthz-exactly-ok SHOULD
	// ok: true
}

package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

func healthChecks() []Check {
	return []Check{{
		ID:          "health/ok",
		Level:       LevelMinimum,
		Requirement: Must,
		Operations:  []string{"healthz"},
		Anchor:      anchorHealthz,
		Spec:        "GET /healthz: 200 text/plain containing OK, no authentication",
		Parallel:    true,
		Run:         checkHealth,
	}}
}

func checkHealth(ctx context.Context, env *Env) error {
	resp, err := env.NoAuthClient.Healthz(ctx)
	x, err := env.do(ctx, "GET /healthz", resp, err)
	if err != nil {
		return err
	}
	x.judge()
	var errs []error
	if err := expectStatus(x, 200); err != nil {
		errs = append(errs, err)
	} else if !strings.Contains(string(x.Body), "OK") {
		errs = append(errs, fmt.Errorf("body does not contain OK (the Python client's health test)\n%s", x))
	}
	return errors.Join(errs...)
}

// Package conformance is the NoxRunner backend conformance suite: a registry
// of checks that exercise a running backend over HTTP and report every way it
// departs from the contract in api/openapi.yaml.
//
// The suite plays the role Go CDK's blob/drivertest plays for blob drivers:
// the local backend passes it, and any other backend (Kubernetes, containers,
// VMs) can be measured against it.
//
// # Checks
//
// Each check has an id such as "exec/timeout-kills-process-tree", the level
// of the behaviour it tests (minimum, recommended or extension), the
// extension it needs (from GET /v1/info; "" for plain v1 behaviour) and the
// section of the specification it tests. A check's body returns an error that
// describes every misbehaviour it saw, including the request it made and the
// response it got, so the same checks run under go test and from the nox CLI.
//
// Checks talk to the backend through the generated client (gen/noxapi) and
// raw net/http for malformed input, never through the SDK. Every response is
// validated against the contract with kin-openapi (status codes, content
// types, headers and body schemas); a response that does not match is a
// failure of the check that made the request. Event streams are validated for
// status and headers, and their event grammar is checked by the suite.
//
// [Checks] returns the registry. It is assembled by a function from the
// per-area files (checks_health.go, checks_sandbox.go, checks_exec.go,
// checks_files.go, checks_ext.go); there is no package-level mutable
// registry. To add a check, append it to its area's list.
//
// # Drivers
//
// [Run] runs the suite as Go subtests, one per check:
//
//	func TestMyBackend(t *testing.T) {
//		cfg := conformance.NewConfig()
//		cfg.BaseURL = srv.URL
//		conformance.Run(t, cfg)
//	}
//
// [RunSuite] runs it without the testing package and returns a [Report],
// which can be written as text, JSON or JUnit XML ([Report.Write]); the nox
// conformance command is built on it and exits 0 only when [Report.OK].
// A check ends as pass, fail, skip (level not selected, extension not
// advertised, slow checks skipped) or error (the suite itself broke, for
// example the backend is unreachable).
//
// Levels select checks cumulatively: minimum, recommended (minimum too) or
// all (extensions too, each only when GET /v1/info advertises it).
//
// # Hygiene
//
// Every sandbox a check creates carries the run's random id prefix and is
// deleted when the check ends, whether it passed or not, so runs against a
// shared backend do not collide or leak.
package conformance

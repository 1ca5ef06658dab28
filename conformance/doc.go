// Package conformance is the NoxRunner backend conformance suite: checks
// that exercise a running backend over HTTP and report every way it departs
// from the contract in api/openapi.yaml.
//
// The suite plays the role Go CDK's blob/drivertest plays for blob drivers,
// and is a library and a binary as csi-sanity is: the local backend passes
// it, any other backend (Kubernetes, containers, VMs) can be measured
// against it with nox conformance, and Go programs run it under go test
// through package conformancetest. This package never imports testing, so
// the nox binary does not link it.
//
// # Checks
//
// Each [Check] has an id such as "exec/timeout-kills-process-tree" (ids are
// stable: scripts select checks by them), and says what it is keyed by:
//
//   - the contract operations it covers (Operations: operationId values
//     such as "execInSandbox") and the extensions beyond those (Extensions:
//     Info.extensions names such as "exec.flags");
//   - how strongly the contract asks for the behaviour ([Must] or
//     [Should]);
//   - the level that selects it (minimum, recommended or extension) and
//     the extension it needs advertised (Capability; "" for plain v1);
//   - the behaviour it tests (Spec) and where that is written (Anchor: a
//     JSON pointer into api/openapi.yaml, or a section of the v1
//     specification).
//
// A check's body returns an error that describes every misbehaviour it saw,
// including the request it made and the response it got, so the same checks
// run under go test and from the nox CLI. A test of this package fails when
// an operation or extension of the contract has no check, or an anchor
// points nowhere.
//
// Checks talk to the backend through the generated client (gen/noxapi) and
// raw net/http for malformed input, never through the SDK. Every response is
// validated against the contract with kin-openapi (status codes, content
// types, headers and body schemas) and its timestamps must be RFC 3339
// strings. Event streams are validated for status and headers, and read
// with the SDK's own event-stream reader (internal/sse) in strict mode,
// which reports every departure from the grammar ([ParseSSE]). A
// process's output stream, whose event ids are offsets, is read by a
// reader of the suite's own that keeps them (internal/sse drops ids) and
// its grammar checked with [ParseSSE] afterwards; a terminal's WebSocket
// is dialled with github.com/coder/websocket, and the answer to its
// handshake is validated like any other.
//
// # Isolated failures and the deviation summary
//
// Each check fails only on its own subject. Its set-up steps (creating the
// sandbox it needs, helper commands, uploads it builds on: [Env.CreateOK],
// [Env.NewSandbox], [Env.ExecOK], [Env.Sh], [Env.UploadOK]) accept any
// success and read answers leniently, as the Python NoxRunner client does:
// timestamps in any form real backends send, numbers with a fraction for
// integers, missing fields as zero values. A contract violation counts
// against a check only in an answer the check judges: each operation has
// one check that judges the form of its answer (sandbox/create,
// exec/stdout-stderr, files/upload-gzip, ...), error answers are judged
// by the checks that ask for them, and answers that must agree (the
// answers to creates of one session id) are judged for what they do not
// share. So a backend whose expiresAt is not RFC 3339 fails
// sandbox/create, and the exec checks still run.
//
// What a check finds names a [Deviation]: a departure that several checks
// can see (timestamps, an unknown sandbox not answered 404, chunked
// uploads refused, an operation answering another success status) has an
// id of its own; anything else is a deviation of the check's own subject.
// A [Report] ends with the deviation summary ([Summarize]): each
// deviation once, with its MUST/SHOULD level, the clause departed from,
// the checks it made fail and a one-line reproduction (method, path, body,
// observed against expected). Text, JSON and JUnit reports all carry it.
//
// [Checks] returns the suite's own checks, assembled by a function from the
// per-area files (checks_health.go, checks_sandbox.go, checks_exec.go,
// checks_files.go, checks_fs.go with checks_fs_*.go and checks_fswatch.go
// for the files extensions, checks_ext.go, checks_proc.go with
// checks_proc_*.go and checks_exec_stdin.go for the processes extensions
// and exec.stdin; anchors.go names the sections they test). A check may record what it measured with [Env.Notef]; the
// notes are reported with its result ([Result.Notes]) whatever its status.
// There is no package-level mutable registry: each call builds a new slice.
// To add a check to the suite, append it to its area's list. A third party
// adds checks of its own through [Config.ExtraChecks]; they run after the
// suite's, under the same selection, and every id of a run must be unique.
//
// # Drivers
//
// [RunSuite] runs the suite and returns a [Report], which can be written as
// text, JSON or JUnit XML ([Report.Write]); the nox conformance command is
// built on it and exits 0 only when [Report.OK]. A check ends as pass, fail,
// skip (outside the profile, slow checks skipped, or the check cannot judge
// this backend) or error (the suite itself broke, for example the backend
// is unreachable).
//
// Package conformancetest runs the suite as Go subtests, one per check:
//
//	func TestMyBackend(t *testing.T) {
//		cfg := conformance.NewConfig()
//		cfg.BaseURL = srv.URL
//		conformancetest.Run(t, cfg)
//	}
//
// Other drivers build on a [Session] ([NewSession]), which selects the
// checks, asks the backend what it is, and runs one check at a time.
//
// # Profiles and certified runs
//
// A [Profile] selects the checks, as Gateway API's Core and Extended
// support levels do: core is NoxRunner v1 (the minimum and recommended
// checks), extended adds the checks of the extensions the backend
// advertises in GET /v1/info (the default), all is every check. The older
// [Level] selection still works: minimum, recommended (core) or all
// (extended). A check outside the profile is reported as skipped, outside
// the profile, as csi-sanity skips a capability a driver does not claim
// ([SkipUnclaimed]). With [Config.Certify], as in Kubernetes' certified
// runs, any other skip fails the run. Reports record the version of the
// contract tested, the extensions the backend claims and every skip with
// its reason.
//
// # Hygiene
//
// Every sandbox a check creates carries the run's random id prefix and is
// deleted when the check ends, whether it passed or not, so runs against a
// shared backend do not collide or leak.
package conformance

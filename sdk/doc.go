// Package sdk is the Go client of NoxRunner sandbox backends.
//
// A Client talks to one backend; New takes its base URL (which may carry a
// path prefix) and options:
//
//	client, err := sdk.New("http://127.0.0.1:8080",
//		sdk.WithToken(os.Getenv("NOX_TOKEN")),
//		sdk.WithTimeout(2*time.Minute))
//
// WithHandler serves the requests by an in-process http.Handler instead of
// the network, for tests and for embedding a backend.
//
// # Sandboxes
//
// Every call takes a context first and the session id next. A Sandbox
// handle fills in the id:
//
//	sb := client.Sandbox("my-session")
//	if _, err := sb.Create(ctx, sdk.CreateOptions{TTL: 15 * time.Minute}); err != nil { ... }
//	defer sb.Delete(context.WithoutCancel(ctx))
//	if err := sb.WaitReady(ctx, sdk.WaitOptions{}); err != nil { ... }
//
// Optional parameters are plain structs whose zero fields are not sent, so
// the backend's defaults apply (a backend advertises them in Info.Limits;
// DefaultTTL, DefaultWorkdir and DefaultExecTimeout are the contract's).
//
// # Commands
//
// Exec runs an argv and returns its exit code and output; a non-zero exit
// code is not an error. Shell runs a script with sh or bash. ExecStream
// delivers the output while the command runs (extension exec.stream) and
// falls back to Exec on backends without it:
//
//	res, err := sb.Exec(ctx, sdk.ExecRequest{Cmd: []string{"python3", "--version"}})
//	res, err = sb.Shell(ctx, "echo $GREETING", sdk.ShellOptions{Env: map[string]string{"GREETING": "hi"}})
//	res, err = sb.ExecStream(ctx, sdk.ExecRequest{Cmd: []string{"make"}},
//		sdk.StreamOptions{Stdout: os.Stdout, Stderr: os.Stderr})
//
// ExecRequest.Stdin feeds a command's standard input (extension
// ExtExecStdin), read to its end before the request.
//
// # Processes
//
// With extension ExtProcesses, Start starts a process that outlives the
// request, the Client and the program: it runs until it exits, is killed
// or the sandbox ends, and any program finds it again with Process (by
// id) or Processes (optionally by tag). A *Process has Wait (any length
// of time, as repeated long polls), Output (an iterator of chunks with
// offsets that replays what the backend kept and follows new output,
// resuming a dropped connection where it stopped, so no byte is lost or
// repeated), Stdin (an io.WriteCloser whose writes stream in one
// request), WriteStdin and CloseStdin, Signal, Resize and Kill:
//
//	p, err := sb.Start(ctx, []string{"python3", "-m", "http.server"}, sdk.StartOptions{Tag: "web"})
//	for chunk, err := range p.Output(ctx, 0) { ... }
//	rec, err := p.Wait(ctx)
//
// With ExtProcessesTerminal, Terminal runs a command (a login shell by
// default) on a pseudo-terminal and returns an io.ReadWriteCloser on it,
// with Resize and CloseWrite, as ssh does; Process.Attach attaches to a
// process started with StartOptions.PTY, and detaches on Close.
//
// # Ports
//
// With extension ExtPorts, a server listening on a port inside the
// sandbox is reached through the backend, which dials it from outside
// (the sandbox needs no network access). Dial returns a net.Conn to the
// port, for any protocol; PortClient an *http.Client whose host-less URLs
// are paths of the port's server, sent with the token through the
// backend's proxy (PortURL is its base URL); Preview a signed, expiring
// URL for a browser, which sends no token:
//
//	conn, err := sb.Dial(ctx, 5432)
//	resp, err := sb.PortClient(8000).Get("/health")
//	p, err := sb.Preview(ctx, 8000, time.Hour) // p.URL
//
// # Network egress
//
// With extension ExtNetworkEgress, each sandbox has an egress policy: mode
// EgressNone (the default: nothing outside the sandbox is reachable),
// EgressAllowlist (only the names, wildcards, addresses and prefixes
// Allow lists) or EgressOpen (all but what Deny lists). Set it at
// creation with CreateOptions.Network, read it with Network or
// SandboxStatus.Network, and replace it with SetNetwork:
//
//	p, err := sb.SetNetwork(ctx, sdk.NetworkPolicy{Egress: sdk.EgressAllowlist, Allow: []string{"pypi.org"}})
//
// Without the extension, Network and SetNetwork, and a create asking
// for a mode other than EgressNone, fail with ErrUnsupported before any
// request.
//
// # Files
//
// Files travel as gzip tar archives. UploadFiles sends in-memory files,
// UploadDir a local directory, UploadArchive the archive a function writes
// and Upload an archive you built. Every upload carries a Content-Length
// when its size is known; an archive of unknown size streams chunked to a
// backend that advertises ExtUploadChunked and is spooled to a temporary
// file for any other (memory use does not grow with its size either way).
// Download returns the archive as a stream; DownloadTo extracts it locally
// with ExtractTarGz, which refuses to write outside the target directory
// and caps what it writes (ExtractOptions: 1 GiB of file contents and
// 100000 entries by default, DownloadToWith and ExtractTarGzWith to
// change them). An archive over a cap fails with ErrTooLarge, and a failed
// extraction removes what it created.
//
//	_, err = sb.UploadFiles(ctx, "/workspace", map[string][]byte{"main.py": []byte("print(1)\n")})
//	_, err = sb.UploadDir(ctx, "/workspace/src", "./src")
//	err = sb.DownloadTo(ctx, "/workspace/out", "./out")
//	err = sb.DownloadToWith(ctx, "/workspace/data", "./data", sdk.ExtractOptions{MaxBytes: 8 << 30})
//
// # Single files
//
// With extension ExtFilesOps a file travels as itself, without tar:
// ReadFile and Open (streamed, with byte ranges and an If-None-Match
// ETag) read one; WriteFile, WriteFileWith and CreateFile (streamed
// chunked) and WriteFileFrom (a file with a Content-Length, else
// streamed) replace one atomically, with optional parents, mode and
// conditions (WriteOptions.IfMatch for compare-and-swap, CreateOnly);
// Stat, ReadDir (an iterator over pages, optionally recursive), Mkdir,
// MkdirAll, Remove, RemoveAll and Rename work as their os namesakes.
// Watch (extension ExtFilesWatch) returns an iterator of changes. Paths
// are absolute in the sandbox or relative to DefaultWorkdir.
//
//	_, err = sb.WriteFile(ctx, "in/data.csv", csv, 0o644)
//	out, err := sb.ReadFile(ctx, "out/result.json")
//	for fi, err := range sb.ReadDir(ctx, "out", sdk.ReadDirOptions{}) { ... }
//
// FS is an io/fs view of DefaultWorkdir (fs.WalkDir, fs.ReadFile,
// template.ParseFS and http.FS work on it). On a backend without
// ExtFilesOps, ReadFile, Open, WriteFile, WriteFileWith, WriteFileFrom,
// CreateFile and Stat fall back to one-entry tar archives through
// Download and uploads (without conditional writes, ETags or server-side
// ranges); the other operations fail with ErrUnsupported.
//
// # JSON
//
// Info, Limits, SandboxStatus and ExecResult encode to JSON and decode from
// it with the API's member names, times in RFC 3339 (UTC) and durations in
// seconds or milliseconds as the member names say: the form nox --json
// prints.
//
// # What the SDK accepts
//
// The SDK is as tolerant as a client should be of backends that depart
// from the contract in form but not in substance, so that a call whose
// effect happened is never reported as failed:
//
//   - any 2xx status is success, for every operation (a create answered
//     201, an upload or touch answered 204 with no body);
//   - timestamps are read in RFC 3339, with a redundant Z after an offset
//     ("...+00:00Z"), without a zone (taken as UTC), with a space for the
//     T, or as seconds since the Unix epoch (a JSON number or a string of
//     one); a timestamp in no such form leaves its field zero and its JSON
//     text in the result's Unparsed map (CreateResult, TouchResult,
//     SandboxStatus), keyed by member name;
//   - integer members written with a fraction or an exponent (durationMs
//     1.5, exitCode 0.0) or as strings are rounded to the nearest integer;
//   - unknown members are ignored and missing optional ones left zero; a
//     create, touch or upload answer that is empty or not JSON at all
//     leaves the result zero (its text is in Unparsed under "");
//   - the exec.flags members (TimedOut, ...) are false when not sent,
//     except TimedOut, derived from exit code 124 when the backend is not
//     known to advertise exec.flags (see ExecResult.TimedOut).
//
// Exec, Get, List and Info fail when their answer is not readable even
// so: their data is the point of the call. WithDebug logs every request
// and answer to see what a backend sent.
//
// # Discovery
//
// Extensions beyond the v1 specification are optional. Info describes the
// backend; Supports (cached per Client) tells whether an extension such as
// ExtSandboxesList is available, and is false for every extension on a
// plain v1 backend. Get and List need sandboxes.get and sandboxes.list
// (without them they fail with ErrUnsupported).
//
// # Errors
//
// An answer with an unexpected status is an *APIError carrying the status,
// the backend's message, the X-Request-Id and the operation. Test its
// category with errors.Is and the sentinels (ErrNotFound, ErrInvalidArgument,
// ErrUnauthorized, ErrConflict, ErrTooLarge, ErrUnavailable, ErrInternal,
// and for the file operations ErrPreconditionFailed, ErrNotModified and
// ErrInsufficientStorage).
// A call to an extension the backend lacks (Get or List on a plain v1
// backend) fails with an error matching ErrUnsupported, not ErrNotFound.
// When the context ends, the error wraps ctx.Err(). A call that cannot
// succeed (an empty session id or command, an unknown shell, an archive
// name outside the destination) fails with ErrInvalidArgument before any
// request is made; the backend would refuse it with the same category.
//
// # Retries
//
// Idempotent calls (health, info, create, touch, get, list, delete,
// download; of the file operations read, stat, list, watch, MkdirAll,
// RemoveAll and an unconditional WriteFile; of the process calls info,
// list, wait, output, resize and kill) are retried on connection errors
// and 502/503/504 answers with exponential backoff and full jitter,
// honouring Retry-After. Exec, upload, Start, Signal and stdin are not
// retried unless RetryPolicy.RetryNonIdempotent is set (a stdin stream
// never is). See WithRetry and WithoutRetry.
package sdk

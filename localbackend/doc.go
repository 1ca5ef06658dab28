// Package localbackend is the nox reference backend: it serves the NoxRunner
// API (api/openapi.yaml) on one Linux host and runs each sandbox in an
// isolated environment provided by localbackend/internal/sandbox.
//
// # Layout
//
// The transport (server.go, http.go, stream.go) maps HTTP requests to the
// store (store.go), which holds the sandboxes' state and returns wrapped
// sentinel errors (ErrNotFound, ErrInvalid, ...). The store talks to the
// runtime through a small unexported interface (runtime.go) so that tests can
// run the HTTP and state layers against a test double without namespaces.
//
// # Data directory
//
// Config.DataDir holds everything that survives a restart:
//
//	lock                      flock(2)ed by the running server
//	meta/<key>.json           one sandbox's metadata, written atomically
//	sandboxes/<key>/workspace the sandbox's /workspace
//	sandboxes/<key>/upload    staging area of uploads in progress
//	runtime/                  the runtime's private state
//
// <key> is an opaque hex digest of the session id; session ids are never
// used raw in host paths. After a restart every sandbox is loaded in state
// "stopped" and its environment is rebuilt on next use.
//
// # Files API
//
// Upload and download see only /workspace: the sandbox's /tmp is a private
// tmpfs that the server cannot reach, so dest and src must lie inside
// /workspace. Every workspace file operation goes through an os.Root, so a
// symbolic link planted by sandboxed code never makes the server read or
// write outside the workspace.
//
// # Output
//
// stdout and stderr are each capped at Config.MaxOutputBytes. Output is
// returned as UTF-8: invalid byte sequences (including a multi-byte
// character cut by the cap) are replaced by U+FFFD.
package localbackend

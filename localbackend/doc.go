// Package localbackend is the nox reference backend: it implements
// driver.Backend on one Linux host, running each sandbox in an isolated
// environment provided by localbackend/internal/sandbox. Package server
// turns it into the NoxRunner API (api/openapi.yaml); Backend.Handler is
// that HTTP handler, built with the Config's server options.
//
// # Layout
//
// The package holds no HTTP code. driver.go converts between the driver's
// types and the store's; the store holds the sandboxes' state and returns
// wrapped sentinel errors (ErrNotFound, ErrInvalid, ...), one job per file:
//
//	backend.go      Backend: New, Handler, Driver, Close, Info
//	config.go       Config, its defaults and validation, isolation tiers
//	datadir.go      the data directory's layout and lock
//	meta.go         sandbox metadata: atomic writes, loading, flushing
//	store.go        the in-memory state; acquiring and releasing a sandbox
//	lifecycle.go    create (ensure), get, list, touch, delete
//	reaper.go       deleting expired sandboxes
//	environment.go  building a sandbox's environment on the runtime
//	admission.go    admitting a command: per-sandbox and backend slots, workdir check
//	budget.go       the host budgets: processes and open files of running sandboxes
//	exec.go         running an admitted command (driver.Execution)
//	output.go       capping and streaming a command's output
//	files.go        upload and download; archive.go the tar codec
//	transfers.go    downloads cut when their sandbox is deleted or expires
//	paths.go        sandbox paths inside /workspace to workspace-relative ones
//	storage.go      the ephemeral storage monitor
//
// The store talks to the runtime through a small unexported interface
// (runtime.go) so that tests can run the whole backend against a test
// double without namespaces.
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
// used raw in host paths. Metadata is written atomically (temporary file,
// fsync, rename) when a sandbox is created, outside the store's lock; the
// meta directory itself is fsynced every ReaperInterval and on Close, and
// later changes of a sandbox's expiry by its activity are flushed at the
// same times (touch and a create changing the TTL write at once). A
// kill -9 therefore loses at most one interval of activity and never a
// sandbox or a workspace; a power loss within one interval of a create may
// lose that sandbox (its workspace is then removed at the next start). After a restart
// every sandbox is loaded in state "stopped" and its environment is rebuilt
// on next use.
//
// Create answers as soon as the sandbox's init runs; while the init sets up
// the environment (mounts, pivot_root, seccomp) the sandbox is "pending" and
// the first exec waits for it. A setup failure is reported by that exec.
//
// # Lifecycle
//
// Create (ensure), exec, upload, download and touch refresh a sandbox's
// expiry; get and list do not. Touch, and a create changing an existing
// sandbox's TTL, save its metadata before answering (a failed write fails the request and
// changes nothing). A reaper deletes expired sandboxes within about
// ReaperInterval of their expiry (and once at startup), but never while an
// exec or upload runs in them; downloads in flight do not keep a sandbox:
// delete and expiry cut them. Delete and expiry kill every process and
// remove the workspace; a command running then ends with exit code 137 and
// "nox: the command was killed because its sandbox was deleted" on stderr.
// A create racing a delete of its id waits for the delete, then creates the
// sandbox anew. Close stops every environment and keeps the workspaces.
//
// # Admission
//
// A command waits up to ExecQueueWait for one of its sandbox's
// MaxConcurrentExecsPerSandbox slots, then for one of the backend's
// MaxConcurrentExecs, and is refused (ErrBusy, 503) when either stays
// full: one sandbox cannot take every slot. An environment starts only
// within the host budgets (budget.go): the sum of the Pids limits of the
// running sandboxes stays within HostPidsBudget, their number times
// OpenFiles within HostOpenFilesBudget; beyond, the create or the exec
// that would start it is refused (ErrBusy) before anything is written.
//
// # Files API
//
// Upload and download see only /workspace: the sandbox's /tmp is a private
// tmpfs that the server cannot reach, so dest and src must lie inside
// /workspace. Every workspace file operation goes through an os.Root, so a
// symbolic link planted by sandboxed code never makes the server read or
// write outside the workspace.
//
// An upload streams the (gzip or plain) tar into a staging directory beside
// the workspace, never buffering it, and rejects absolute names, ".."
// components, links pointing outside dest, devices and fifos. Only when the
// whole archive was accepted are its entries moved into dest (renameat(2)
// between directory descriptors): existing directories are merged, other
// existing entries replaced, and a directory replaces a symbolic link. A
// rejected or interrupted upload therefore leaves the workspace unchanged.
// Files are given to the sandbox's host uid when the runtime uses one.
// The sandbox's storage limit is checked against the files already in the
// workspace before the upload is written; a workspace at or above its limit
// refuses uploads (413) until files are deleted. A download streams a gzip tar of a
// file or directory, keeping modes, mtimes, empty directories and symbolic
// links (never followed); hard links are stored as separate files.
//
// # Storage limit
//
// ephemeralStorage is enforced the way Kubernetes does it, by monitoring:
// every Config.StorageCheckInterval (1s) one goroutine measures, one
// sandbox after another, the disk space allocated in the workspace of each
// sandbox whose environment runs, stopping the walk at twice the limit.
// Above the limit every process of the sandbox is killed (its environment
// is stopped and rebuilt on next use); a command that was running ends with
// exit code 137 and "nox: ephemeral storage limit <q> exceeded; processes
// killed" on stderr. While the workspace stays above its limit it may only
// shrink: commands may run (to delete files), but growth beyond the lowest
// usage seen since the kill is killed again. The overshoot is bounded by
// what the sandbox writes in one interval (plus the walk's duration);
// RLIMIT_FSIZE caps every single file at the limit, and the private /tmp is
// a separate tmpfs of min(256Mi, limit) that is not counted.
//
// # Output
//
// stdout and stderr are each capped at Config.MaxOutputBytes. Output is
// returned as UTF-8: invalid byte sequences (including a multi-byte
// character cut by the cap) are replaced by U+FFFD.
package localbackend

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
//	fsroot.go       the files API's path resolution from the workspace's descriptor
//	fileops.go      stat, mkdir, remove, move; fileread.go, filewrite.go, filelist.go
//	watch.go        file watches: inotify feeding an internal/watchqueue queue
//	transfers.go    downloads cut when their sandbox is deleted or expires
//	paths.go        sandbox paths inside /workspace to workspace-relative ones
//	quota.go        per-sandbox file systems (internal/diskquota) in the store
//	storage.go      the ephemeral storage monitor (the fallback)
//	usage.go        the monitor's bounded, openat-relative usage walk
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
//	sandboxes/<key>/disk.img  the sandbox's file system (an ext4 image)
//	sandboxes/<key>/fs/       where it is mounted, holding:
//	    workspace/            the sandbox's /workspace
//	    tmp/                  its /tmp (emptied whenever its environment is built)
//	    .staging/             uploads in progress (never visible inside)
//	sandboxes/<key>/workspace without an image: the sandbox's /workspace
//	sandboxes/<key>/upload    without an image: uploads in progress
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
// /workspace. Every workspace file operation goes through an os.Root or
// the files API's own resolver, so a symbolic link planted by sandboxed
// code never makes the server read or write outside the workspace.
//
// The single-file operations (extension files.ops: read, write, stat,
// list, mkdir, remove, move) resolve each path from the workspace's
// descriptor one component at a time (openat, O_NOFOLLOW), never through
// a host path. Links are followed by hand only while they stay inside:
// relative targets, and absolute ones naming /workspace or below it (the
// sandbox's own view); anything else, or ".." above /workspace, is 400.
// Stat, remove and move never follow a final link; read, write and list
// do. A read opens the file again through /proc/self/fd only once an
// O_PATH descriptor showed it regular (a FIFO or device is never
// opened). A write streams into a hidden temporary file (.nox-new-* or
// .nox-rpl-*, O_EXCL) beside the target, owned by the sandbox's user,
// and renames it into place: readers see the old file or the new, and a
// failed, cut, oversized (MaxBytes, 413) or out-of-space (507) write
// leaves the target and no temporary file. If-Match compares an ETag of
// device, inode, size and modification time; create-only uses
// RENAME_NOREPLACE. Writes count against the storage limit like uploads.
// A listing reads each directory once and keeps only the page's worth of
// smallest names, so its work is bounded by the page (MaxListPageSize)
// whatever the directory's size. Reads and watches hold their sandbox
// like downloads: a delete or expiry cuts them; writes hold it like
// uploads.
//
// A watch (extension files.watch) has its own inotify instance, read
// through the runtime's netpoller, with a watch per directory added
// through /proc/self/fd of a descriptor opened from the workspace. A
// recursive watch adds directories as they appear and reports what was
// made in them before as creates. The events go through the queue every
// backend shares (internal/watchqueue): writes of one path are coalesced
// in 50 ms windows (the first at once, the rest as one at the window's
// end), and a client that falls MaxWatchQueue events behind gets an
// overflow event. A rename inside the tree is one rename event (a
// directory's watches follow it), a move out a remove, a move in a create
// of everything moved; a files API write shows as a create or a write of
// its target, never as its temporary file. MaxWatchesPerSandbox (503 beyond) and
// MaxWatchDirs (the watch ends with an error naming it) bound a sandbox's
// inotify use, HostWatchesBudget and HostWatchDirsBudget (half the host
// user's fs.inotify limits by default) the whole server's (503 beyond).
//
// An upload streams the (gzip or plain) tar into a staging directory beside
// the workspace, never buffering it, and rejects absolute names, ".."
// components, links pointing outside dest, devices and fifos. Only when the
// whole archive was accepted are its entries moved into dest (renameat(2)
// between directory descriptors): existing directories are merged, other
// existing entries replaced, and a directory replaces a symbolic link. A
// rejected or interrupted upload therefore leaves the workspace unchanged.
// Files are given to the sandbox's host uid when the runtime uses one.
// Staging counts against the sandbox's storage limit: on its image, or,
// without one, against the room its workspace has left, shared by its
// uploads in progress. An upload that runs out of space answers 507 with a
// message naming no host path; nothing of it is kept. A download streams a gzip tar of a
// file or directory, keeping modes, mtimes, empty directories and symbolic
// links (never followed); hard links are stored as separate files.
//
// # Storage limit
//
// ephemeralStorage is enforced by the kernel where it can be
// (Config.StorageEnforcement "auto", a root server with loop devices and
// mkfs.ext4; probed once by New): every new sandbox with a storage limit
// gets an ext4 file system of exactly that size in a sparse image file,
// without journal or reserved blocks, with one inode per 16 KiB of limit
// (at least 1024), mounted nosuid,nodev,discard on a loop device that is
// freed when it is unmounted. Its /workspace, its /tmp and its uploads in
// progress live on it, so writes beyond the limit (bytes or inodes) fail
// with ENOSPC inside the sandbox, nothing overshoots, deleted files give
// their blocks back to the host, and an idle sandbox costs nothing. Images
// are mounted at create and when a server starts (a mount left by a server
// that died is reused, and so is a loop device that still backs the
// image), unmounted (lazily) at delete and Close. GET /v1/info says which
// mechanism is in use.
//
// Elsewhere (a server that is not root, no loop devices, the monitor
// asked for, and workspaces created by an older server) ephemeralStorage
// is enforced the way Kubernetes does it, by monitoring: every
// Config.StorageCheckInterval (1s) one goroutine goes on measuring the
// workspaces of the sandboxes whose environment runs, visiting at most
// 50000 entries per interval across all of them (a walk goes on at the
// next interval), stopping a walk at twice the limit. The walk opens each
// directory relative to its parent with O_NOFOLLOW: no path is too long and
// no link is followed. Every entry counts for at least 4 KiB and a sparse
// file for its apparent size; a workspace that cannot be measured (deeper
// than 1024 directories, say) counts as over its limit. Above the limit every process of the sandbox is killed (its environment
// is stopped and rebuilt on next use); a command that was running ends with
// exit code 137 and "nox: ephemeral storage limit <q> exceeded; processes
// killed" on stderr. While the workspace stays above its limit it may only
// shrink: commands may run (to delete files) in an environment that cannot
// write file data (RLIMIT_FSIZE of one byte), growth beyond the lowest
// usage seen since the first kill is killed again, and the next command
// once it is back under its limit gets a fresh environment. The overshoot is bounded by
// what the sandbox writes in one interval (plus the walk's duration);
// RLIMIT_FSIZE caps every single file at the limit, and the private /tmp is
// a separate tmpfs of min(256Mi, limit) that is not counted.
//
// # Network egress
//
// In the tiers that give sandboxes a network namespace of their own
// (namespaces, root-namespaces) the backend offers extension
// network.egress (and Driver is a driver.Network); the host tiers share
// the host's network and offer neither it nor ports. A sandbox's namespace
// has only its loopback, and no route out. While its environment runs
// with a policy other than none, the server serves an egress gateway
// (package internal/egress) on two sockets the sandbox's init binds in
// that namespace, 127.0.0.53:53 (DNS, which /etc/resolv.conf names) and
// 127.0.0.53:3128 (an HTTP and SOCKS5 proxy), and makes the upstream
// connections and lookups itself, from Config.EgressNetns when set: the
// sandbox reaches nothing the policy and the operator's bounds
// (EgressModes, MaxEgressRules, EgressOpen, EgressPermit, and the host's
// own addresses, taken at start) do not allow. Commands and processes
// started while the policy is not none get the proxy variables
// (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, their lower-case forms, NO_PROXY)
// under the request's own. The gateway starts with the environment
// (create then answers once the environment's setup is done), is replaced
// when the environment is rebuilt, and is closed when the policy becomes
// none and when the environment stops (delete, expiry, Close, storage
// kill). A policy change on a running sandbox takes effect at once and
// closes the connections the gateway held; it is saved with the metadata
// first, counts as activity and never starts the environment. A policy
// the operator's bounds no longer permit when the server starts again
// becomes none (logged).
//
// # Output
//
// stdout and stderr are each capped at Config.MaxOutputBytes. Output is
// returned as UTF-8: invalid byte sequences (including a multi-byte
// character cut by the cap) are replaced by U+FFFD.
package localbackend

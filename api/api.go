// Package api holds the NoxRunner contract, api/openapi.yaml, embedded in the
// binary so programs can serve it or validate traffic against it.
package api

import (
	"bytes"
	_ "embed"
)

//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI returns a copy of the OpenAPI 3.0.3 document that defines the
// NoxRunner v1 API and its nox extensions.
func OpenAPI() []byte { return bytes.Clone(openapiYAML) }

// Level is the specification level of an operation, from its x-nox-level.
type Level string

// The levels an operation can have.
const (
	// LevelMinimum operations must be implemented by every backend.
	LevelMinimum Level = "minimum"
	// LevelRecommended operations should be implemented; existing clients use them.
	LevelRecommended Level = "recommended"
	// LevelExtension operations are optional, additive nox extensions,
	// advertised by GET /v1/info.
	LevelExtension Level = "extension"
)

// Extension names a backend advertises in Info.extensions.
const (
	// ExtInfo is GET /v1/info itself.
	ExtInfo = "info"
	// ExtSandboxesGet is GET /v1/sandboxes/{sessionId}.
	ExtSandboxesGet = "sandboxes.get"
	// ExtSandboxesList is GET /v1/sandboxes.
	ExtSandboxesList = "sandboxes.list"
	// ExtExecStream is POST /v1/sandboxes/{sessionId}/exec/stream.
	ExtExecStream = "exec.stream"
	// ExtExecFlags is the timedOut, stdoutTruncated, stderrTruncated and
	// oomKilled fields of an exec result.
	ExtExecFlags = "exec.flags"
	// ExtAuthBearer means the backend requires Authorization: Bearer <token>.
	ExtAuthBearer = "auth.bearer"
	// ExtUploadChunked means uploads may be sent with Transfer-Encoding:
	// chunked and no Content-Length. Clients send a Content-Length to
	// backends that do not advertise it.
	ExtUploadChunked = "upload.chunked"
	// ExtFilesOps is the single-file operations under
	// /v1/sandboxes/{sessionId}/fs/ (read, write, stat, list, mkdir,
	// remove, move).
	ExtFilesOps = "files.ops"
	// ExtFilesWatch is GET /v1/sandboxes/{sessionId}/fs/watch.
	ExtFilesWatch = "files.watch"
	// ExtExecStdin is the stdin and stdinEncoding fields of an exec
	// request.
	ExtExecStdin = "exec.stdin"
	// ExtProcesses is the process API under
	// /v1/sandboxes/{sessionId}/processes: start, list, get, wait, output
	// with replay, stdin, signal, resize and kill.
	ExtProcesses = "processes"
	// ExtProcessesTerminal is the WebSocket terminal of a process started
	// with a pty (GET .../processes/{processId}/terminal).
	ExtProcessesTerminal = "processes.terminal"
	// ExtPorts is the port proxy (/v1/sandboxes/{sessionId}/ports/{port}/),
	// TCP tunnels (/v1/sandboxes/{sessionId}/tunnel/{port}) and preview
	// URLs (POST /v1/sandboxes/{sessionId}/previews).
	ExtPorts = "ports"
	// ExtNetworkEgress is the per-sandbox egress policy: the network field
	// of a create request and of a sandbox's status, and
	// /v1/sandboxes/{sessionId}/network.
	ExtNetworkEgress = "network.egress"
	// ExtSandboxesUsage is the usage field of a sandbox's status.
	ExtSandboxesUsage = "sandboxes.usage"
	// ExtMetrics is GET /metrics in the Prometheus text format.
	ExtMetrics = "metrics"
)

// The egress modes of a network policy (extension network.egress).
const (
	// EgressNone: nothing outside the sandbox is reachable (the default).
	EgressNone = "none"
	// EgressAllowlist: only the destinations the policy allows.
	EgressAllowlist = "allowlist"
	// EgressOpen: every destination the policy does not deny.
	EgressOpen = "open"
)

// Extensions returns the extension names the contract defines, in the
// order backends list them in GET /v1/info.
func Extensions() []string {
	return []string{ExtInfo, ExtSandboxesGet, ExtSandboxesList, ExtExecStream, ExtExecFlags, ExtAuthBearer, ExtUploadChunked, ExtFilesOps, ExtFilesWatch, ExtExecStdin, ExtProcesses, ExtProcessesTerminal, ExtPorts, ExtNetworkEgress, ExtSandboxesUsage, ExtMetrics}
}

package api

import "regexp"

// Workspace is the sandbox directory that commands start in and the files
// API reads and writes by default (the contract's default workdir, dest
// and src).
const Workspace = "/workspace"

// SessionIDPattern is the contract's pattern of a session id; ids are also
// at most MaxSessionIDLength characters long.
const SessionIDPattern = `^[A-Za-z0-9][A-Za-z0-9._-]*$`

// MaxSessionIDLength is the contract's maxLength of a session id.
const MaxSessionIDLength = 128

var sessionIDRE = regexp.MustCompile(SessionIDPattern)

// ValidSessionID reports whether id is a session id the contract accepts.
func ValidSessionID(id string) bool {
	return len(id) >= 1 && len(id) <= MaxSessionIDLength && sessionIDRE.MatchString(id)
}

// The states of a sandbox (SandboxStatus.state).
const (
	StatePending     = "pending"
	StateReady       = "ready"
	StateStopped     = "stopped"
	StateTerminating = "terminating"
)

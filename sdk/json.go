package sdk

// This file is the JSON form of the SDK's value types, the form `nox
// --json` prints. Members are named as in the API; times are RFC 3339 in
// UTC with as many fraction digits as needed, and left out when zero;
// durations are whole seconds (...Seconds) or milliseconds (...Ms).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/noxrunner/nox/internal/lenient"
)

// marshalJSON encodes v without escaping HTML characters: the caller's
// encoder decides that (json.Marshal escapes them, an Encoder with
// SetEscapeHTML(false) does not).
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// formatTime is the JSON form of t: RFC 3339 in UTC, "" when zero.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// parseTime parses a timestamp member of the JSON form, in any form
// lenient.ParseTimestamp reads; "" is the zero time.
func parseTime(member, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, ok := lenient.ParseTimestamp(s)
	if !ok {
		return time.Time{}, fmt.Errorf("%s: %q is not a timestamp", member, s)
	}
	return t, nil
}

// infoJSON is the JSON form of Info.
type infoJSON struct {
	APIVersion     string      `json:"apiVersion,omitempty"`
	Backend        string      `json:"backend,omitempty"`
	BackendVersion string      `json:"backendVersion,omitempty"`
	PlainV1        bool        `json:"plainV1"`
	Extensions     []string    `json:"extensions"`
	Isolation      *Isolation  `json:"isolation,omitempty"`
	Limits         *limitsJSON `json:"limits,omitempty"`
	Images         []string    `json:"images,omitempty"`
}

// MarshalJSON encodes i with the backend's name and version as the
// members backend and backendVersion, extensions always as a list, and
// limits as Limits.MarshalJSON does, left out when none was advertised.
func (i Info) MarshalJSON() ([]byte, error) {
	j := infoJSON{APIVersion: i.APIVersion, Backend: i.Backend.Name, BackendVersion: i.Backend.Version,
		PlainV1: i.PlainV1, Extensions: i.Extensions, Isolation: i.Isolation, Images: i.Images}
	if j.Extensions == nil {
		j.Extensions = []string{}
	}
	l := i.Limits.toJSON()
	if len(l.EgressModes) == 0 {
		l.EgressModes = nil
	}
	if !reflect.ValueOf(l).IsZero() {
		j.Limits = &l
	}
	return marshalJSON(j)
}

// UnmarshalJSON decodes the form MarshalJSON encodes.
func (i *Info) UnmarshalJSON(b []byte) error {
	var j infoJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*i = Info{APIVersion: j.APIVersion, Backend: BackendIdentity{Name: j.Backend, Version: j.BackendVersion},
		Extensions: j.Extensions, Isolation: j.Isolation, Images: j.Images, PlainV1: j.PlainV1}
	if j.Limits != nil {
		i.Limits = j.Limits.value()
	}
	return nil
}

// limitsJSON is the JSON form of Limits, its members in alphabetical order.
type limitsJSON struct {
	DefaultTimeoutSeconds        int64        `json:"defaultTimeoutSeconds,omitempty"`
	DefaultTTLSeconds            int64        `json:"defaultTtlSeconds,omitempty"`
	EgressModes                  []EgressMode `json:"egressModes,omitempty"`
	HostOpenFilesBudget          int64        `json:"hostOpenFilesBudget,omitempty"`
	HostPidsBudget               int64        `json:"hostPidsBudget,omitempty"`
	MaxConcurrentExecs           int64        `json:"maxConcurrentExecs,omitempty"`
	MaxConcurrentExecsPerSandbox int64        `json:"maxConcurrentExecsPerSandbox,omitempty"`
	MaxDownloadBytes             int64        `json:"maxDownloadBytes,omitempty"`
	MaxDownloadEntries           int64        `json:"maxDownloadEntries,omitempty"`
	MaxEgressConnections         int64        `json:"maxEgressConnections,omitempty"`
	MaxEgressRules               int64        `json:"maxEgressRules,omitempty"`
	MaxListPageSize              int64        `json:"maxListPageSize,omitempty"`
	MaxOutputBytes               int64        `json:"maxOutputBytes,omitempty"`
	MaxProcessRecords            int64        `json:"maxProcessRecords,omitempty"`
	MaxProcessWaitSeconds        int64        `json:"maxProcessWaitSeconds,omitempty"`
	MaxProcessesPerSandbox       int64        `json:"maxProcessesPerSandbox,omitempty"`
	MaxStdinBytes                int64        `json:"maxStdinBytes,omitempty"`
	MaxTimeoutSeconds            int64        `json:"maxTimeoutSeconds,omitempty"`
	MaxTTLSeconds                int64        `json:"maxTtlSeconds,omitempty"`
	MaxUploadBytes               int64        `json:"maxUploadBytes,omitempty"`
	MaxUploadEntries             int64        `json:"maxUploadEntries,omitempty"`
	MaxWatchDirs                 int64        `json:"maxWatchDirs,omitempty"`
	MaxWatchQueue                int64        `json:"maxWatchQueue,omitempty"`
	MaxWatchesPerSandbox         int64        `json:"maxWatchesPerSandbox,omitempty"`
	MinCPU                       string       `json:"minCpu,omitempty"`
	MinMemory                    string       `json:"minMemory,omitempty"`
	OpenFiles                    int64        `json:"openFiles,omitempty"`
	ProcessOutputBytes           int64        `json:"processOutputBytes,omitempty"`
	StallTimeoutSeconds          int64        `json:"stallTimeoutSeconds,omitempty"`
	StreamHeartbeatMs            int64        `json:"streamHeartbeatMs,omitempty"`
}

func (l Limits) toJSON() limitsJSON {
	return limitsJSON{
		DefaultTimeoutSeconds:        int64(l.DefaultTimeout / time.Second),
		DefaultTTLSeconds:            int64(l.DefaultTTL / time.Second),
		MaxConcurrentExecs:           int64(l.MaxConcurrentExecs),
		MaxOutputBytes:               l.MaxOutputBytes,
		MaxTimeoutSeconds:            int64(l.MaxTimeout / time.Second),
		MaxTTLSeconds:                int64(l.MaxTTL / time.Second),
		MaxUploadBytes:               l.MaxUploadBytes,
		MaxUploadEntries:             l.MaxUploadEntries,
		StreamHeartbeatMs:            l.StreamHeartbeat.Milliseconds(),
		MaxConcurrentExecsPerSandbox: int64(l.MaxConcurrentExecsPerSandbox),
		StallTimeoutSeconds:          int64(l.StallTimeout / time.Second),
		MinCPU:                       l.MinCPU,
		MinMemory:                    l.MinMemory,
		HostPidsBudget:               l.HostPidsBudget,
		OpenFiles:                    l.OpenFiles,
		HostOpenFilesBudget:          l.HostOpenFilesBudget,
		MaxDownloadBytes:             l.MaxDownloadBytes,
		MaxDownloadEntries:           l.MaxDownloadEntries,
		MaxListPageSize:              int64(l.MaxListPageSize),
		MaxWatchDirs:                 int64(l.MaxWatchDirs),
		MaxWatchQueue:                int64(l.MaxWatchQueue),
		MaxWatchesPerSandbox:         int64(l.MaxWatchesPerSandbox),
		MaxProcessRecords:            int64(l.MaxProcessRecords),
		MaxProcessWaitSeconds:        int64(l.MaxProcessWait / time.Second),
		MaxProcessesPerSandbox:       int64(l.MaxProcessesPerSandbox),
		MaxStdinBytes:                l.MaxStdinBytes,
		ProcessOutputBytes:           l.ProcessOutputBytes,
		EgressModes:                  l.EgressModes,
		MaxEgressRules:               int64(l.MaxEgressRules),
		MaxEgressConnections:         int64(l.MaxEgressConnections),
	}
}

func (j limitsJSON) value() Limits {
	return Limits{
		DefaultTTL:                   time.Duration(j.DefaultTTLSeconds) * time.Second,
		MaxTTL:                       time.Duration(j.MaxTTLSeconds) * time.Second,
		DefaultTimeout:               time.Duration(j.DefaultTimeoutSeconds) * time.Second,
		MaxTimeout:                   time.Duration(j.MaxTimeoutSeconds) * time.Second,
		MaxOutputBytes:               j.MaxOutputBytes,
		MaxUploadBytes:               j.MaxUploadBytes,
		MaxUploadEntries:             j.MaxUploadEntries,
		MaxConcurrentExecs:           int(j.MaxConcurrentExecs),
		StreamHeartbeat:              time.Duration(j.StreamHeartbeatMs) * time.Millisecond,
		MaxConcurrentExecsPerSandbox: int(j.MaxConcurrentExecsPerSandbox),
		StallTimeout:                 time.Duration(j.StallTimeoutSeconds) * time.Second,
		MinCPU:                       j.MinCPU,
		MinMemory:                    j.MinMemory,
		HostPidsBudget:               j.HostPidsBudget,
		OpenFiles:                    j.OpenFiles,
		HostOpenFilesBudget:          j.HostOpenFilesBudget,
		MaxDownloadBytes:             j.MaxDownloadBytes,
		MaxDownloadEntries:           j.MaxDownloadEntries,
		MaxListPageSize:              int(j.MaxListPageSize),
		MaxWatchDirs:                 int(j.MaxWatchDirs),
		MaxWatchQueue:                int(j.MaxWatchQueue),
		MaxWatchesPerSandbox:         int(j.MaxWatchesPerSandbox),
		MaxProcessRecords:            int(j.MaxProcessRecords),
		MaxProcessWait:               time.Duration(j.MaxProcessWaitSeconds) * time.Second,
		MaxProcessesPerSandbox:       int(j.MaxProcessesPerSandbox),
		MaxStdinBytes:                j.MaxStdinBytes,
		ProcessOutputBytes:           j.ProcessOutputBytes,
		EgressModes:                  j.EgressModes,
		MaxEgressRules:               int(j.MaxEgressRules),
		MaxEgressConnections:         int(j.MaxEgressConnections),
	}
}

// MarshalJSON encodes l with its members in alphabetical order: durations
// in whole seconds, except streamHeartbeatMs in milliseconds; a zero
// (unadvertised) limit is left out.
func (l Limits) MarshalJSON() ([]byte, error) { return marshalJSON(l.toJSON()) }

// UnmarshalJSON decodes the form MarshalJSON encodes.
func (l *Limits) UnmarshalJSON(b []byte) error {
	var j limitsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*l = j.value()
	return nil
}

// statusJSON is the JSON form of SandboxStatus.
type statusJSON struct {
	SessionID    string          `json:"sessionId"`
	PodName      string          `json:"podName,omitempty"`
	State        SandboxState    `json:"state"`
	Image        string          `json:"image,omitempty"`
	CreatedAt    string          `json:"createdAt,omitempty"`
	LastActiveAt string          `json:"lastActiveAt,omitempty"`
	ExpiresAt    string          `json:"expiresAt,omitempty"`
	TTLSeconds   int64           `json:"ttlSeconds,omitempty"`
	Limits       *ResourceLimits `json:"limits,omitempty"`
	RunningExecs int             `json:"runningExecs"`
	Network      *NetworkPolicy  `json:"network,omitempty"`
	Usage        *usageJSON      `json:"usage,omitempty"`
}

// usageJSON is the JSON form of Usage: measured fields only.
type usageJSON struct {
	CPUSeconds   *float64 `json:"cpuSeconds,omitempty"`
	MemoryBytes  *int64   `json:"memoryBytes,omitempty"`
	Pids         *int64   `json:"pids,omitempty"`
	StorageBytes *int64   `json:"storageBytes,omitempty"`
}

// toJSON is u's JSON form, nil for nil.
func (u *Usage) toJSON() *usageJSON {
	if u == nil {
		return nil
	}
	j := &usageJSON{}
	if u.CPUSeconds >= 0 {
		j.CPUSeconds = &u.CPUSeconds
	}
	for _, f := range []struct {
		v   *int64
		dst **int64
	}{{&u.MemoryBytes, &j.MemoryBytes}, {&u.Pids, &j.Pids}, {&u.StorageBytes, &j.StorageBytes}} {
		if *f.v >= 0 {
			*f.dst = f.v
		}
	}
	return j
}

// usage is the Usage of j, nil for nil.
func (j *usageJSON) usage() *Usage {
	if j == nil {
		return nil
	}
	u := &Usage{CPUSeconds: -1, MemoryBytes: -1, Pids: -1, StorageBytes: -1}
	if j.CPUSeconds != nil {
		u.CPUSeconds = *j.CPUSeconds
	}
	for _, f := range []struct {
		src *int64
		dst *int64
	}{{j.MemoryBytes, &u.MemoryBytes}, {j.Pids, &u.Pids}, {j.StorageBytes, &u.StorageBytes}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	return u
}

// MarshalJSON encodes s as the API does, leaving out empty members and
// limits when none was reported.
func (s SandboxStatus) MarshalJSON() ([]byte, error) {
	j := statusJSON{SessionID: s.SessionID, PodName: s.PodName, State: s.State, Image: s.Image,
		CreatedAt: formatTime(s.CreatedAt), LastActiveAt: formatTime(s.LastActiveAt), ExpiresAt: formatTime(s.ExpiresAt),
		TTLSeconds: int64(s.TTL / time.Second), RunningExecs: s.RunningExecs, Network: s.Network, Usage: s.Usage.toJSON()}
	if !s.Limits.empty() {
		j.Limits = &s.Limits
	}
	return marshalJSON(j)
}

// UnmarshalJSON decodes the form MarshalJSON encodes.
func (s *SandboxStatus) UnmarshalJSON(b []byte) error {
	var j statusJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	v := SandboxStatus{SessionID: j.SessionID, PodName: j.PodName, State: j.State, Image: j.Image,
		TTL: time.Duration(j.TTLSeconds) * time.Second, RunningExecs: j.RunningExecs, Network: j.Network, Usage: j.Usage.usage()}
	if j.Limits != nil {
		v.Limits = *j.Limits
	}
	var err error
	if v.CreatedAt, err = parseTime("createdAt", j.CreatedAt); err != nil {
		return err
	}
	if v.LastActiveAt, err = parseTime("lastActiveAt", j.LastActiveAt); err != nil {
		return err
	}
	if v.ExpiresAt, err = parseTime("expiresAt", j.ExpiresAt); err != nil {
		return err
	}
	*s = v
	return nil
}

// empty reports whether no limit was reported.
func (r ResourceLimits) empty() bool {
	return r.CPU == "" && r.EphemeralStorage == "" && r.Memory == "" && r.PIDs == 0 && len(r.Unenforced) == 0
}

// execResultJSON is the JSON form of ExecResult.
type execResultJSON struct {
	ExitCode        int    `json:"exitCode"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	DurationMs      int64  `json:"durationMs"`
	TimedOut        bool   `json:"timedOut"`
	StdoutTruncated bool   `json:"stdoutTruncated"`
	StderrTruncated bool   `json:"stderrTruncated"`
	OOMKilled       bool   `json:"oomKilled"`
}

// MarshalJSON encodes r as the API does, with every flag of extension
// exec.flags and the duration in milliseconds.
func (r ExecResult) MarshalJSON() ([]byte, error) {
	return marshalJSON(execResultJSON{ExitCode: r.ExitCode, Stdout: r.Stdout, Stderr: r.Stderr,
		DurationMs: r.Duration.Milliseconds(), TimedOut: r.TimedOut, StdoutTruncated: r.StdoutTruncated,
		StderrTruncated: r.StderrTruncated, OOMKilled: r.OOMKilled})
}

// UnmarshalJSON decodes the form MarshalJSON encodes.
func (r *ExecResult) UnmarshalJSON(b []byte) error {
	var j execResultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = ExecResult{ExitCode: j.ExitCode, Stdout: j.Stdout, Stderr: j.Stderr,
		Duration: time.Duration(j.DurationMs) * time.Millisecond, TimedOut: j.TimedOut,
		StdoutTruncated: j.StdoutTruncated, StderrTruncated: j.StderrTruncated, OOMKilled: j.OOMKilled}
	return nil
}

// processJSON is the JSON form of ProcessInfo: the API's Process.
type processJSON struct {
	ID          string       `json:"id"`
	Tag         string       `json:"tag,omitempty"`
	Cmd         []string     `json:"cmd"`
	Workdir     string       `json:"workdir,omitempty"`
	PTY         bool         `json:"pty"`
	Stdin       bool         `json:"stdin"`
	State       ProcessState `json:"state"`
	StartedAt   string       `json:"startedAt,omitempty"`
	EndedAt     string       `json:"endedAt,omitempty"`
	ExitCode    *int         `json:"exitCode,omitempty"`
	Signal      Signal       `json:"signal,omitempty"`
	TimedOut    bool         `json:"timedOut"`
	OOMKilled   bool         `json:"oomKilled"`
	OutputBytes int64        `json:"outputBytes"`
	OutputStart int64        `json:"outputStart"`
}

// MarshalJSON encodes i as the API's Process, with exitCode only once the
// process exited.
func (i ProcessInfo) MarshalJSON() ([]byte, error) {
	j := processJSON{ID: i.ID, Tag: i.Tag, Cmd: i.Cmd, Workdir: i.Workdir, PTY: i.PTY, Stdin: i.Stdin,
		State: i.State, StartedAt: formatTime(i.StartedAt), EndedAt: formatTime(i.EndedAt), Signal: i.Signal,
		TimedOut: i.TimedOut, OOMKilled: i.OOMKilled, OutputBytes: i.OutputBytes, OutputStart: i.OutputStart}
	if j.Cmd == nil {
		j.Cmd = []string{}
	}
	if i.State == ProcessExited {
		j.ExitCode = &i.ExitCode
	}
	return marshalJSON(j)
}

// UnmarshalJSON decodes the form MarshalJSON encodes.
func (i *ProcessInfo) UnmarshalJSON(b []byte) error {
	var j processJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	v := ProcessInfo{ID: j.ID, Tag: j.Tag, Cmd: j.Cmd, Workdir: j.Workdir, PTY: j.PTY, Stdin: j.Stdin,
		State: j.State, Signal: j.Signal, TimedOut: j.TimedOut, OOMKilled: j.OOMKilled,
		OutputBytes: j.OutputBytes, OutputStart: j.OutputStart}
	if j.ExitCode != nil {
		v.ExitCode = *j.ExitCode
	}
	var err error
	if v.StartedAt, err = parseTime("startedAt", j.StartedAt); err != nil {
		return err
	}
	if v.EndedAt, err = parseTime("endedAt", j.EndedAt); err != nil {
		return err
	}
	*i = v
	return nil
}

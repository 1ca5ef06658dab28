package sdk

// This file is the one place where generated models (package noxapi) are
// converted to and from the SDK's value types, and where answers are
// decoded into them.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"math"
	"path"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/lenient"
)

// decodeModel decodes a JSON answer into the generated model v (a
// pointer), as tolerantly as a client should be: unknown members are
// ignored, missing ones left zero, timestamps read in any form
// parseTimestamp reads, and integers written with a fraction or an
// exponent, or as strings, rounded (parseInteger). A timestamp in no such
// form is left zero and returned in unparsed, keyed by its member path
// ("expiresAt", "items.0.createdAt"), with its JSON text. An answer in the
// contract's own form takes one plain decode.
func decodeModel(body []byte, v any) (unparsed map[string]string, err error) {
	if json.Unmarshal(body, v) == nil {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	unparsed = map[string]string{}
	tree = repairValue(tree, reflect.TypeOf(v).Elem(), "", unparsed)
	norm, err := json.Marshal(tree)
	if err != nil {
		return nil, err
	}
	reflect.ValueOf(v).Elem().SetZero() // the first decode may have filled some of it
	if err := json.Unmarshal(norm, v); err != nil {
		return nil, err
	}
	if len(unparsed) == 0 {
		return nil, nil
	}
	return unparsed, nil
}

var timeType = reflect.TypeFor[time.Time]()

// repairValue rewrites the decoded JSON value val, meant for a Go value of type
// t, into the form encoding/json decodes into t, where it can; see
// decodeModel. path names val in unparsed.
func repairValue(val any, t reflect.Type, path string, unparsed map[string]string) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if val == nil {
		return nil
	}
	switch {
	case t == timeType:
		var text string
		switch x := val.(type) {
		case string:
			text = x
		case json.Number:
			text = x.String()
		}
		if ts, ok := lenient.ParseTimestamp(text); ok {
			return ts.Format(time.RFC3339Nano)
		}
		raw, _ := json.Marshal(val)
		unparsed[path] = string(raw)
		return nil
	case t.Kind() == reflect.Struct:
		if m, ok := val.(map[string]any); ok {
			for i := range t.NumField() {
				f := t.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "-" || !f.IsExported() {
					continue
				}
				if name == "" {
					name = f.Name
				}
				if key, ok := memberKey(m, name); ok {
					m[key] = repairValue(m[key], f.Type, joinPath(path, name), unparsed)
				}
			}
		}
	case t.Kind() == reflect.Slice:
		if a, ok := val.([]any); ok {
			for i := range a {
				a[i] = repairValue(a[i], t.Elem(), joinPath(path, strconv.Itoa(i)), unparsed)
			}
		}
	case t.Kind() == reflect.Map:
		if m, ok := val.(map[string]any); ok {
			for k := range m {
				m[k] = repairValue(m[k], t.Elem(), joinPath(path, k), unparsed)
			}
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		bits := t.Bits()
		lo, hi := int64(-1)<<(bits-1), int64(1)<<(bits-1)-1
		if bits == 64 {
			lo, hi = math.MinInt64, math.MaxInt64
		}
		if n, ok := lenient.ParseInteger(numberText(val), lo, hi); ok {
			return json.Number(strconv.FormatInt(n, 10))
		}
	}
	return val
}

// numberText is the text of a JSON number or string, or "".
func numberText(val any) string {
	switch x := val.(type) {
	case json.Number:
		return x.String()
	case string:
		return x
	}
	return ""
}

// memberKey finds the member name in m as encoding/json does: the exact
// key, else one equal under case folding.
func memberKey(m map[string]any, name string) (string, bool) {
	if _, ok := m[name]; ok {
		return name, true
	}
	for k := range m {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// unparsedUnder returns the entries of unparsed under prefix (a member
// path and a dot), with the prefix removed, or nil.
func unparsedUnder(unparsed map[string]string, prefix string) map[string]string {
	var out map[string]string
	for k, v := range unparsed {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[rest] = v
		}
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func ptrIf[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

// seconds converts a duration to whole seconds, rounding up, clamped to int32.
func seconds(d time.Duration) int32 {
	s := (d + time.Second - 1) / time.Second
	return int32(min(max(s, 1), math.MaxInt32))
}

// optionalSeconds is seconds(d) for a positive d, and nil (the field is
// not sent, so the backend's default applies) otherwise.
func optionalSeconds(d time.Duration) *int32 {
	if d <= 0 {
		return nil
	}
	s := seconds(d)
	return &s
}

func secs32(p *int32) time.Duration {
	return time.Duration(deref(p)) * time.Second
}

func toGenCreate(o CreateOptions) noxapi.CreateSandboxRequest {
	g := noxapi.CreateSandboxRequest{
		TTLSeconds:            optionalSeconds(o.TTL),
		Image:                 ptrIf(o.Image),
		CPULimit:              ptrIf(o.CPU),
		MemoryLimit:           ptrIf(o.Memory),
		EphemeralStorageLimit: ptrIf(o.Storage),
	}
	if o.Network != nil {
		n := toGenNetwork(*o.Network)
		g.Network = &n
	}
	return g
}

func fromGenCreate(r *noxapi.CreateSandboxResult, unparsed map[string]string) *CreateResult {
	return &CreateResult{PodName: r.PodName, ExpiresAt: r.ExpiresAt, Unparsed: unparsed}
}

func fromGenTouch(r *noxapi.TouchResult, unparsed map[string]string) *TouchResult {
	return &TouchResult{ExpiresAt: deref(r.ExpiresAt), Message: deref(r.Message), Unparsed: unparsed}
}

func toGenExec(r ExecRequest) noxapi.ExecRequest {
	g := noxapi.ExecRequest{Cmd: r.Cmd, Workdir: ptrIf(r.Workdir), TimeoutSeconds: optionalSeconds(r.Timeout)}
	if len(r.Env) > 0 {
		g.Env = r.Env
	}
	return g
}

// toGenStdin encodes the stdin of an exec request: as text when it is
// valid UTF-8, else in base64.
func toGenStdin(data []byte) (*string, *noxapi.ExecRequestStdinEncoding) {
	if utf8.Valid(data) {
		s := string(data)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(data)
	enc := noxapi.Base64
	return &s, &enc
}

// fromGenExec converts an exec result; deriveTimedOut sets TimedOut from
// exit code 124 when the answer has no timedOut member (see
// ExecResult.TimedOut).
func fromGenExec(r *noxapi.ExecResult, deriveTimedOut bool) *ExecResult {
	timedOut := deref(r.TimedOut)
	if r.TimedOut == nil && deriveTimedOut {
		timedOut = r.ExitCode == 124
	}
	return &ExecResult{
		ExitCode:        int(r.ExitCode),
		Stdout:          r.Stdout,
		Stderr:          r.Stderr,
		Duration:        time.Duration(r.DurationMs) * time.Millisecond,
		TimedOut:        timedOut,
		StdoutTruncated: deref(r.StdoutTruncated),
		StderrTruncated: deref(r.StderrTruncated),
		OOMKilled:       deref(r.OomKilled),
	}
}

func fromGenUpload(r *noxapi.UploadResult) *UploadResult {
	return &UploadResult{Files: deref(r.Files), Bytes: deref(r.Bytes), Message: deref(r.Message)}
}

func fromGenInfo(r *noxapi.Info) *Info {
	i := &Info{
		APIVersion: r.APIVersion,
		Backend:    BackendIdentity{Name: r.Backend.Name, Version: r.Backend.Version},
		Extensions: r.Extensions,
		Images:     r.Images,
	}
	if r.Isolation != nil {
		i.Isolation = &Isolation{Tier: r.Isolation.Tier, Isolated: r.Isolation.Isolated, Notes: r.Isolation.Notes}
	}
	if l := r.Limits; l != nil {
		i.Limits = Limits{
			DefaultTTL:                   secs32(l.DefaultTTLSeconds),
			MaxTTL:                       secs32(l.MaxTTLSeconds),
			DefaultTimeout:               secs32(l.DefaultTimeoutSeconds),
			MaxTimeout:                   secs32(l.MaxTimeoutSeconds),
			MaxOutputBytes:               deref(l.MaxOutputBytes),
			MaxUploadBytes:               deref(l.MaxUploadBytes),
			MaxUploadEntries:             deref(l.MaxUploadEntries),
			MaxConcurrentExecs:           int(deref(l.MaxConcurrentExecs)),
			StreamHeartbeat:              secs32(l.StreamHeartbeatSeconds),
			MaxConcurrentExecsPerSandbox: int(deref(l.MaxConcurrentExecsPerSandbox)),
			StallTimeout:                 secs32(l.StallTimeoutSeconds),
			MinCPU:                       deref(l.MinCPU),
			MinMemory:                    deref(l.MinMemory),
			HostPidsBudget:               deref(l.HostPidsBudget),
			OpenFiles:                    deref(l.OpenFiles),
			HostOpenFilesBudget:          deref(l.HostOpenFilesBudget),
			MaxDownloadBytes:             deref(l.MaxDownloadBytes),
			MaxDownloadEntries:           deref(l.MaxDownloadEntries),
			MaxListPageSize:              int(deref(l.MaxListPageSize)),
			MaxWatchesPerSandbox:         int(deref(l.MaxWatchesPerSandbox)),
			MaxWatchDirs:                 int(deref(l.MaxWatchDirs)),
			MaxWatchQueue:                int(deref(l.MaxWatchQueue)),
			MaxProcessesPerSandbox:       int(deref(l.MaxProcessesPerSandbox)),
			MaxProcessRecords:            int(deref(l.MaxProcessRecords)),
			ProcessOutputBytes:           deref(l.ProcessOutputBytes),
			MaxProcessWait:               secs32(l.MaxProcessWaitSeconds),
			MaxStdinBytes:                deref(l.MaxStdinBytes),
			MaxPreviewTTL:                secs32(l.MaxPreviewTTLSeconds),
			MaxEgressRules:               int(deref(l.MaxEgressRules)),
			MaxEgressConnections:         int(deref(l.MaxEgressConnections)),
		}
		for _, m := range l.EgressModes {
			i.Limits.EgressModes = append(i.Limits.EgressModes, EgressMode(m))
		}
	}
	return i
}

func fromGenStatus(r *noxapi.SandboxStatus, unparsed map[string]string) SandboxStatus {
	s := SandboxStatus{
		SessionID:    r.SessionID,
		PodName:      r.PodName,
		State:        SandboxState(r.State),
		Image:        deref(r.Image),
		CreatedAt:    r.CreatedAt,
		LastActiveAt: r.LastActiveAt,
		ExpiresAt:    r.ExpiresAt,
		TTL:          time.Duration(r.TTLSeconds) * time.Second,
		RunningExecs: int(deref(r.RunningExecs)),
		Unparsed:     unparsed,
	}
	if r.Network != nil {
		n := fromGenNetwork(r.Network)
		s.Network = &n
	}
	if u := r.Usage; u != nil {
		s.Usage = &Usage{CPUSeconds: -1, MemoryBytes: -1, Pids: -1, StorageBytes: -1}
		if u.CPUSeconds != nil {
			s.Usage.CPUSeconds = *u.CPUSeconds
		}
		if u.MemoryBytes != nil {
			s.Usage.MemoryBytes = *u.MemoryBytes
		}
		if u.Pids != nil {
			s.Usage.Pids = int64(*u.Pids)
		}
		if u.StorageBytes != nil {
			s.Usage.StorageBytes = *u.StorageBytes
		}
	}
	if l := r.Limits; l != nil {
		s.Limits = ResourceLimits{
			CPU:              deref(l.CPU),
			Memory:           deref(l.Memory),
			EphemeralStorage: deref(l.EphemeralStorage),
			PIDs:             int(deref(l.Pids)),
			Unenforced:       l.Unenforced,
		}
	}
	return s
}

// formatMode writes the octal mode the contract takes, or nil for 0.
func formatMode(m fs.FileMode) *string {
	if m == 0 {
		return nil
	}
	s := api.FormatMode(m)
	return &s
}

func fromGenFileInfo(g *noxapi.FileInfo) FileInfo {
	name := g.Name
	if name == "" {
		name = path.Base(g.Path)
	}
	return FileInfo{
		Path:       g.Path,
		Name:       name,
		Type:       FileType(g.Type),
		Size:       g.Size,
		Mode:       parseMode(g.Mode),
		ModTime:    g.ModTime,
		LinkTarget: deref(g.LinkTarget),
		ETag:       deref(g.Etag),
	}
}

func fromGenFileEvent(g *noxapi.FileEvent) FileEvent {
	return FileEvent{Type: FileEventType(g.Type), Path: g.Path, OldPath: deref(g.OldPath), IsDir: deref(g.IsDir)}
}

// parseMode reads an octal mode of the contract ("0644"); an unreadable
// one is 0.
func parseMode(s string) fs.FileMode {
	m, _ := api.ParseMode(s)
	return m
}

func toGenProcess(cmd []string, o StartOptions) noxapi.ProcessRequest {
	g := noxapi.ProcessRequest{Cmd: cmd, Workdir: ptrIf(o.Workdir), TimeoutSeconds: optionalSeconds(o.Timeout),
		Stdin: ptrIf(o.Stdin), Tag: ptrIf(o.Tag)}
	if len(o.Env) > 0 {
		g.Env = o.Env
	}
	if o.PTY != nil {
		size := toGenTermSize(*o.PTY)
		g.Pty = &size
	}
	return g
}

func toGenTermSize(s TermSize) noxapi.TerminalSize {
	return noxapi.TerminalSize{Rows: int32(s.Rows), Cols: int32(s.Cols)}
}

func fromGenProcess(g *noxapi.Process) ProcessInfo {
	return ProcessInfo{
		ID:          g.ID,
		Tag:         deref(g.Tag),
		Cmd:         g.Cmd,
		Workdir:     deref(g.Workdir),
		PTY:         deref(g.Pty),
		Stdin:       deref(g.Stdin),
		State:       ProcessState(g.State),
		StartedAt:   g.StartedAt,
		EndedAt:     deref(g.EndedAt),
		ExitCode:    int(deref(g.ExitCode)),
		Signal:      Signal(deref(g.Signal)),
		TimedOut:    deref(g.TimedOut),
		OOMKilled:   deref(g.OomKilled),
		OutputBytes: g.OutputBytes,
		OutputStart: g.OutputStart,
	}
}

// fromGenOutputChunk returns the bytes of an output event's chunk: its
// data member, or dataBase64 for bytes that are not UTF-8.
func fromGenOutputChunk(g *noxapi.ProcessOutputChunk) OutputChunk {
	data := g.DataBase64
	if g.Data != nil {
		data = []byte(*g.Data)
	}
	return OutputChunk{Offset: g.Offset, Stream: string(g.Stream), Data: data}
}

package sdk

// This file is the one place where generated models (package noxapi) are
// converted to and from the SDK's value types.

import (
	"math"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

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
	return noxapi.CreateSandboxRequest{
		TTLSeconds:            optionalSeconds(o.TTL),
		Image:                 ptrIf(o.Image),
		CPULimit:              ptrIf(o.CPU),
		MemoryLimit:           ptrIf(o.Memory),
		EphemeralStorageLimit: ptrIf(o.Storage),
	}
}

func fromGenCreate(r *noxapi.CreateSandboxResult) *CreateResult {
	return &CreateResult{PodName: r.PodName, ExpiresAt: r.ExpiresAt}
}

func fromGenTouch(r *noxapi.TouchResult) *TouchResult {
	return &TouchResult{ExpiresAt: deref(r.ExpiresAt), Message: deref(r.Message)}
}

func toGenExec(r ExecRequest) noxapi.ExecRequest {
	g := noxapi.ExecRequest{Cmd: r.Cmd, Workdir: ptrIf(r.Workdir), TimeoutSeconds: optionalSeconds(r.Timeout)}
	if len(r.Env) > 0 {
		g.Env = r.Env
	}
	return g
}

func fromGenExec(r *noxapi.ExecResult) *ExecResult {
	return &ExecResult{
		ExitCode:        int(r.ExitCode),
		Stdout:          r.Stdout,
		Stderr:          r.Stderr,
		Duration:        time.Duration(r.DurationMs) * time.Millisecond,
		TimedOut:        deref(r.TimedOut),
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
			DefaultTTL:         secs32(l.DefaultTTLSeconds),
			MaxTTL:             secs32(l.MaxTTLSeconds),
			DefaultTimeout:     secs32(l.DefaultTimeoutSeconds),
			MaxTimeout:         secs32(l.MaxTimeoutSeconds),
			MaxOutputBytes:     deref(l.MaxOutputBytes),
			MaxUploadBytes:     deref(l.MaxUploadBytes),
			MaxUploadEntries:   deref(l.MaxUploadEntries),
			MaxConcurrentExecs: int(deref(l.MaxConcurrentExecs)),
			StreamHeartbeat:    secs32(l.StreamHeartbeatSeconds),
		}
	}
	return i
}

func fromGenStatus(r *noxapi.SandboxStatus) SandboxStatus {
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

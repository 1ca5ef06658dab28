package server

import (
	"cmp"
	"slices"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/quantity"
)

// apiVersion is the version of the contract served.
const apiVersion = "v1"

// serves says which optional driver interfaces the backend implements.
type serves struct{ files, watch, procs, ports, network bool }

// infoBody builds the answer of GET /v1/info from what the backend says
// and what the server itself implements and limits.
func infoBody(in driver.Info, opts Options, sv serves) noxapi.Info {
	l := in.Limits
	out := noxapi.Info{
		APIVersion: apiVersion,
		Backend:    noxapi.BackendIdentity{Name: in.Name, Version: in.Version},
		Extensions: extensions(in.Extensions, opts.Token != "", sv),
		Limits: &noxapi.BackendLimits{
			DefaultTTLSeconds:            secondsField(l.DefaultTTL),
			MaxTTLSeconds:                secondsField(l.MaxTTL),
			DefaultTimeoutSeconds:        secondsField(l.DefaultTimeout),
			MaxTimeoutSeconds:            secondsField(l.MaxTimeout),
			MaxOutputBytes:               sizeField(l.MaxOutputBytes),
			MaxUploadBytes:               sizeField(opts.MaxUploadBytes),
			MaxUploadEntries:             sizeField(l.MaxUploadEntries),
			MaxConcurrentExecs:           countField(l.MaxConcurrentExecs),
			MaxConcurrentExecsPerSandbox: countField(l.MaxConcurrentExecsPerSandbox),
			StreamHeartbeatSeconds:       secondsField(max(opts.StreamHeartbeat, time.Second)),
			StallTimeoutSeconds:          secondsField(opts.StallTimeout),
			HostPidsBudget:               sizeField(l.HostPidsBudget),
			OpenFiles:                    sizeField(l.OpenFiles),
			HostOpenFilesBudget:          sizeField(l.HostOpenFilesBudget),
			MinCPU:                       quantityField(l.MinCPUMilli, quantity.FormatCPUMilli),
			MinMemory:                    quantityField(l.MinMemoryBytes, quantity.FormatBytes),
			MaxDownloadBytes:             sizeField(l.MaxDownloadBytes),
			MaxDownloadEntries:           sizeField(l.MaxDownloadEntries),
		},
		Images: slices.Clone(in.Images),
	}
	if sv.files {
		out.Limits.MaxListPageSize = countField(l.MaxListPageSize)
	}
	if sv.watch {
		out.Limits.MaxWatchesPerSandbox = countField(l.MaxWatchesPerSandbox)
		out.Limits.MaxWatchDirs = countField(l.MaxWatchDirs)
		out.Limits.MaxWatchQueue = countField(l.MaxWatchQueue)
	}
	if sv.procs {
		out.Limits.MaxProcessesPerSandbox = countField(l.MaxProcessesPerSandbox)
		out.Limits.MaxProcessRecords = countField(l.MaxProcessRecords)
		out.Limits.ProcessOutputBytes = sizeField(l.ProcessOutputBytes)
		// The server caps every wait: the backend's limit or its default.
		out.Limits.MaxProcessWaitSeconds = secondsField(cmp.Or(max(l.MaxProcessWait, 0), defaultMaxProcessWait))
	}
	if sv.ports {
		out.Limits.MaxPreviewTTLSeconds = secondsField(l.MaxPreviewTTL)
		if opts.PortDomain != "" {
			out.PortDomain = &opts.PortDomain
		}
	}
	if sv.network {
		for _, m := range l.EgressModes {
			out.Limits.EgressModes = append(out.Limits.EgressModes, noxapi.BackendLimitsEgressModes(m))
		}
		out.Limits.MaxEgressRules = countField(l.MaxEgressRules)
		out.Limits.MaxEgressConnections = countField(l.MaxEgressConnections)
	}
	if slices.Contains(in.Extensions, api.ExtExecStdin) {
		out.Limits.MaxStdinBytes = sizeField(l.MaxStdinBytes)
	}
	if iso := in.Isolation; iso != nil {
		out.Isolation = &noxapi.Isolation{Tier: iso.Tier, Isolated: iso.Isolated, Notes: slices.Clone(iso.Notes)}
	}
	return out
}

// extensions lists the extensions served, in the contract's order: the
// ones the server implements for every backend (info, exec.stream,
// upload.chunked, metrics, and auth.bearer with a token), files.ops, files.watch
// processes (with processes.terminal, which the server implements), ports
// and network.egress when the backend lists them and implements
// driver.Files, driver.Watcher, driver.Processes, driver.Ports and
// driver.Network, and the others the backend
// reports, followed by any the server does not know.
func extensions(backend []string, auth bool, sv serves) []string {
	serverOwned := map[string]bool{
		api.ExtInfo: true, api.ExtExecStream: true, api.ExtAuthBearer: auth, api.ExtUploadChunked: true,
		api.ExtFilesOps: sv.files, api.ExtFilesWatch: sv.watch,
		api.ExtProcesses: sv.procs, api.ExtProcessesTerminal: sv.procs,
		api.ExtPorts: sv.ports, api.ExtNetworkEgress: sv.network,
		api.ExtMetrics: true,
	}
	known := api.Extensions()
	var out []string
	for _, x := range known {
		owned, isOwned := serverOwned[x]
		if owned || !isOwned && slices.Contains(backend, x) {
			out = append(out, x)
		}
	}
	for _, x := range backend {
		if !slices.Contains(known, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// secondsField is d in whole seconds, or nil (not advertised) when zero.
func secondsField(d time.Duration) *int32 {
	if d <= 0 {
		return nil
	}
	v := int32(d / time.Second)
	return &v
}

// sizeField is n, or nil (not advertised) when zero.
func sizeField(n int64) *int64 {
	if n <= 0 {
		return nil
	}
	return &n
}

// quantityField is n formatted as a quantity, or nil (not advertised)
// when zero.
func quantityField(n int64, format func(int64) string) *string {
	if n <= 0 {
		return nil
	}
	s := format(n)
	return &s
}

// countField is n, or nil (not advertised) when zero.
func countField(n int) *int32 {
	if n <= 0 {
		return nil
	}
	v := int32(n)
	return &v
}

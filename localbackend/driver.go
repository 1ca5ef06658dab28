package localbackend

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
)

// driverBackend is a Backend seen as a driver.Backend: it converts between
// the driver's types and the store's. The server layer has validated every
// request and applied its defaults (see driver.Backend).
type driverBackend struct{ b *Backend }

var _ driver.Backend = driverBackend{}

// Info describes the backend: its extensions, isolation, limits and images.
func (d driverBackend) Info() driver.Info {
	b := d.b
	c := &b.cfg
	ext := append([]string{api.ExtSandboxesGet, api.ExtSandboxesList, api.ExtExecFlags, api.ExtExecStdin, api.ExtProcesses, api.ExtSandboxesUsage}, fileExtensions()...)
	if hasNetworkNamespace(b.report.Tier) {
		ext = append(ext, api.ExtPorts)
	}
	var egressModes []string
	var maxEgressRules, maxEgressConns int
	if b.egress != nil {
		ext = append(ext, api.ExtNetworkEgress)
		egressModes, maxEgressRules, maxEgressConns = slices.Clone(c.EgressModes), c.MaxEgressRules, c.MaxEgressConnections
	}
	return driver.Info{
		Name: BackendName, Version: c.Version,
		Extensions: ext,
		Isolation: &driver.Isolation{
			Tier: string(b.report.Tier), Isolated: b.report.Isolated, Notes: slices.Clone(b.report.Notes),
		},
		Limits: driver.Limits{
			DefaultTTL: c.DefaultTTL, MaxTTL: c.MaxTTL,
			DefaultTimeout: c.DefaultExecTimeout, MaxTimeout: c.MaxExecTimeout,
			MaxOutputBytes: c.MaxOutputBytes, MaxUploadEntries: c.MaxUploadEntries,
			MaxDownloadBytes: c.MaxDownloadBytes, MaxDownloadEntries: c.MaxDownloadEntries,
			MaxConcurrentExecs: c.MaxConcurrentExecs, MaxConcurrentExecsPerSandbox: c.MaxConcurrentExecsPerSandbox,
			MinCPUMilli: b.lim.minCPU, DefaultCPUMilli: b.lim.defCPU, MaxCPUMilli: b.lim.maxCPU,
			MinMemoryBytes: b.lim.minMemory,
			HostPidsBudget: c.HostPidsBudget, OpenFiles: c.OpenFiles, HostOpenFilesBudget: c.HostOpenFilesBudget,
			DefaultMemoryBytes: b.lim.defMemory, MaxMemoryBytes: b.lim.maxMemory,
			DefaultStorageBytes: b.lim.defStorage, MaxStorageBytes: b.lim.maxStorage,
			MaxListPageSize: c.MaxListPageSize, MaxWatchesPerSandbox: c.MaxWatchesPerSandbox,
			MaxWatchDirs: c.MaxWatchDirs, MaxWatchQueue: c.MaxWatchQueue,
			MaxProcessesPerSandbox: c.MaxProcessesPerSandbox, MaxProcessRecords: c.MaxProcessRecords,
			ProcessOutputBytes: c.ProcessOutputBytes, MaxProcessWait: c.MaxProcessWait, MaxStdinBytes: c.MaxStdinBytes,
			MaxPreviewTTL: c.MaxPreviewTTL,
			EgressModes:   egressModes, MaxEgressRules: maxEgressRules, MaxEgressConnections: maxEgressConns,
		},
		Images: c.imageNames(),
	}
}

// Health fails once the backend is closed.
func (d driverBackend) Health(context.Context) error {
	if d.b.closed() {
		return fmt.Errorf("backend is closed: %w", ErrUnavailable)
	}
	return nil
}

// Create creates or ensures sandbox id and starts its environment.
func (d driverBackend) Create(ctx context.Context, id string, req driver.CreateRequest) (driver.Sandbox, error) {
	if _, ok := d.b.cfg.Images[req.Image]; req.Image != "" && !ok {
		return driver.Sandbox{}, fmt.Errorf("image: unknown image %q: %w", req.Image, ErrInvalid)
	}
	st, err := d.b.store.ensure(ctx, id, req)
	if err != nil {
		return driver.Sandbox{}, err
	}
	return d.sandbox(st), nil
}

// Get returns sandbox id's status without refreshing its expiry.
func (d driverBackend) Get(_ context.Context, id string) (driver.Sandbox, error) {
	st, err := d.b.store.get(id)
	if err != nil {
		return driver.Sandbox{}, err
	}
	return d.sandbox(st), nil
}

// List returns a page of sandboxes ordered by session id.
func (d driverBackend) List(_ context.Context, after string, limit int) ([]driver.Sandbox, bool, error) {
	sts, more := d.b.store.list(after, limit)
	page := make([]driver.Sandbox, len(sts))
	for i, st := range sts {
		page[i] = d.sandbox(st)
	}
	return page, more, nil
}

// Delete stops sandbox id and removes its workspace and metadata.
func (d driverBackend) Delete(_ context.Context, id string) error {
	return d.b.store.remove(id)
}

// Touch refreshes sandbox id's expiry.
func (d driverBackend) Touch(_ context.Context, id string) (time.Time, error) {
	m, err := d.b.store.touch(id)
	if err != nil {
		return time.Time{}, err
	}
	return m.expiresAt(), nil
}

// StartExec admits one command in sandbox id.
func (d driverBackend) StartExec(ctx context.Context, id string, req driver.ExecRequest) (driver.Execution, error) {
	h, err := d.b.store.startExec(ctx, id, req)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Upload extracts a (gzip) tar archive under dest, all or nothing.
func (d driverBackend) Upload(ctx context.Context, id, dest string, archive io.Reader) (driver.UploadResult, error) {
	st, err := d.b.store.upload(ctx, id, dest, archive)
	if err != nil {
		return driver.UploadResult{}, err
	}
	return driver.UploadResult{Files: st.files, Bytes: st.bytes}, nil
}

// Download returns a gzip tar of src, produced while it is read.
func (d driverBackend) Download(ctx context.Context, id, src string) (io.ReadCloser, error) {
	rc, err := d.b.store.download(ctx, id, src)
	if err != nil {
		return nil, err
	}
	return d.b.store.watchDownload(id, rc), nil
}

// sandbox converts a store snapshot to the driver's type.
func (d driverBackend) sandbox(st boxStatus) driver.Sandbox {
	m := st.meta
	s := driver.Sandbox{
		ID: m.SessionID, PodName: m.PodName, State: st.state, Image: m.Image,
		CreatedAt: m.CreatedAt, LastActiveAt: m.LastActiveAt, ExpiresAt: m.expiresAt(),
		TTL: time.Duration(m.TTLSeconds) * time.Second,
		Limits: &driver.ResourceLimits{
			CPUMilli: m.CPUMilli, MemoryBytes: m.MemoryBytes, StorageBytes: m.StorageBytes, Pids: m.Pids,
			Unenforced: slices.Clone(d.b.report.Unenforced),
		},
		RunningExecs: st.runningExecs,
		Usage:        st.usage,
	}
	if d.b.egress != nil {
		s.Network = m.Network.policy()
	}
	return s
}

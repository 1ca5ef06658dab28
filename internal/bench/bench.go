// Package bench measures a NoxRunner backend through the SDK: sandbox
// creation, commands, streamed output, file transfers and a concurrency
// sweep, with, for a backend that runs commands on this host, the same
// commands run with os/exec for comparison. It is the engine of nox bench.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noxrunner/nox/sdk"
)

// The sections of a run, in the order they run.
const (
	SectionCreate   = "create"   // create new sandboxes (and delete them)
	SectionEnsure   = "ensure"   // create of an existing sandbox
	SectionExec     = "exec"     // exec of true and of echo hi on a warm sandbox
	SectionStream   = "stream"   // time to the first stdout event of a streamed echo hi
	SectionUpload   = "upload"   // upload of the generated tree
	SectionDownload = "download" // download of the generated tree
	SectionSweep    = "sweep"    // the concurrency sweep
)

// Sections returns the names of every section, in the order they run.
func Sections() []string {
	return []string{SectionCreate, SectionEnsure, SectionExec, SectionStream, SectionUpload, SectionDownload, SectionSweep}
}

// ErrInvalidConfig is returned (wrapped) by Run for a Config it cannot run.
var ErrInvalidConfig = errors.New("invalid bench configuration")

// Config says what Run measures. Zero fields take the defaults NewConfig
// sets.
type Config struct {
	// Client talks to the backend. Its own retries should be off
	// (sdk.WithoutRetry): Run retries 502, 503 and 504 answers itself,
	// waiting as Retry-After asks, and counts the retries.
	Client *sdk.Client
	// Target names the backend in the report.
	Target string
	// Bare, when not empty, also runs each command with os/exec on this
	// host, interleaved with the calls, and says why that is a fair
	// comparison ("--local"): set it only for a backend on this host.
	Bare string
	// Iterations is the number of ensure, exec and stream calls each.
	Iterations int
	// CreateIterations is the number of sandboxes the create section
	// creates (and deletes).
	CreateIterations int
	// Concurrency are the levels of the sweep: that many sandboxes at once.
	Concurrency []int
	// SweepExecs is the number of execs each sandbox of a sweep level runs.
	SweepExecs int
	// TreeFiles and TreeBytes shape the generated tree that is uploaded
	// and downloaded: files of incompressible content, TreeBytes in all.
	TreeFiles int
	TreeBytes int64
	// TransferRuns is the number of uploads and of downloads.
	TransferRuns int
	// Sections are the sections to run (see Sections); empty means all.
	Sections []string
	// Keep leaves the sandboxes in place instead of deleting them.
	Keep bool
	// Progress, when not nil, receives a line as each section starts.
	Progress io.Writer
	// IDPrefix starts the session id of every sandbox; empty means
	// "noxbench-" and 8 random hex digits.
	IDPrefix string
}

// NewConfig returns the default Config for client.
func NewConfig(client *sdk.Client) Config {
	return Config{
		Client:           client,
		Iterations:       200,
		CreateIterations: 20,
		Concurrency:      []int{1, 10, 50},
		SweepExecs:       20,
		TreeFiles:        200,
		TreeBytes:        16 << 20,
		TransferRuns:     3,
	}
}

func (c *Config) applyDefaults() error {
	d := NewConfig(c.Client)
	if c.Client == nil {
		return fmt.Errorf("no client: %w", ErrInvalidConfig)
	}
	for _, f := range []struct {
		p *int
		v int
	}{{&c.Iterations, d.Iterations}, {&c.CreateIterations, d.CreateIterations}, {&c.SweepExecs, d.SweepExecs},
		{&c.TreeFiles, d.TreeFiles}, {&c.TransferRuns, d.TransferRuns}} {
		if *f.p == 0 {
			*f.p = f.v
		}
		if *f.p < 0 {
			return fmt.Errorf("negative count %d: %w", *f.p, ErrInvalidConfig)
		}
	}
	if c.TreeBytes == 0 {
		c.TreeBytes = d.TreeBytes
	}
	if c.TreeBytes < 0 {
		return fmt.Errorf("negative tree size %d: %w", c.TreeBytes, ErrInvalidConfig)
	}
	if len(c.Concurrency) == 0 {
		c.Concurrency = d.Concurrency
	}
	for _, n := range c.Concurrency {
		if n < 1 {
			return fmt.Errorf("concurrency %d: want 1 or more: %w", n, ErrInvalidConfig)
		}
	}
	if len(c.Sections) == 0 {
		c.Sections = Sections()
	}
	for _, s := range c.Sections {
		if !slices.Contains(Sections(), s) {
			return fmt.Errorf("unknown section %q: %w", s, ErrInvalidConfig)
		}
	}
	if c.IDPrefix == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.IDPrefix = "noxbench-" + hex.EncodeToString(b[:])
	}
	return nil
}

// runner is the state of one Run.
type runner struct {
	cfg    Config
	report *Report
	// retries counts every retry of the run.
	retries atomic.Int64

	mu      sync.Mutex
	created []string // session ids to delete, in creation order

	// treeTar is the generated tree, made on first use.
	treeTar []byte
}

// Run measures the backend as cfg says and returns the report. Every
// sandbox it made is deleted before it returns (unless cfg.Keep), also
// when ctx is cancelled or a call fails; the error is then returned with
// the report of the sections that completed.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, report: &Report{
		Schema:   SchemaVersion,
		Target:   cfg.Target,
		Bare:     cfg.Bare,
		Started:  time.Now().UTC(),
		IDPrefix: cfg.IDPrefix,
		Settings: Settings{
			Iterations: cfg.Iterations, CreateIterations: cfg.CreateIterations,
			Concurrency: cfg.Concurrency, SweepExecs: cfg.SweepExecs,
			TreeFiles: cfg.TreeFiles, TreeBytes: cfg.TreeBytes, TransferRuns: cfg.TransferRuns,
			Sections: cfg.Sections, Keep: cfg.Keep,
		},
		Operations: []Operation{}, Transfers: []Transfer{}, Sweep: []Level{},
	}}
	err := r.sections(ctx)
	r.cleanup(ctx)
	r.report.Retries = int(r.retries.Load())
	r.report.Seconds = time.Since(r.report.Started).Seconds()
	return r.report, err
}

func (r *runner) want(section string) bool { return slices.Contains(r.cfg.Sections, section) }

func (r *runner) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "nox: bench: "+format+"\n", args...)
	}
}

func (r *runner) note(format string, args ...any) {
	r.report.Notes = append(r.report.Notes, fmt.Sprintf(format, args...))
}

// sections runs the sections cfg asks for.
func (r *runner) sections(ctx context.Context) error {
	if r.want(SectionCreate) {
		if err := r.createSection(ctx); err != nil {
			return fmt.Errorf("create: %w", err)
		}
	}
	needMain := slices.ContainsFunc(r.cfg.Sections, func(s string) bool {
		return s == SectionEnsure || s == SectionExec || s == SectionStream || s == SectionUpload || s == SectionDownload
	})
	if needMain {
		sb, err := r.warmSandbox(ctx)
		if err != nil {
			return fmt.Errorf("preparing a warm sandbox: %w", err)
		}
		if err := r.mainSections(ctx, sb); err != nil {
			return err
		}
	}
	if r.want(SectionSweep) {
		if err := r.sweep(ctx); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
	}
	return nil
}

// mainSections runs the sections that use the warm sandbox sb.
func (r *runner) mainSections(ctx context.Context, sb *sdk.Sandbox) error {
	steps := []struct {
		name string
		run  func(context.Context, *sdk.Sandbox) error
	}{
		{SectionEnsure, r.ensureSection},
		{SectionExec, r.execSection},
		{SectionStream, r.streamSection},
		{SectionUpload, r.uploadSection},
		{SectionDownload, r.downloadSection},
	}
	for _, s := range steps {
		if !r.want(s.name) {
			continue
		}
		if err := s.run(ctx, sb); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

//go:build !linux

package sandbox

// Usage is a sandbox's resource use. Negative fields are not measured.
type Usage struct {
	// CPUSeconds is the CPU time its processes used since it started.
	CPUSeconds float64
	// MemoryBytes is the memory in use now; Pids the processes and
	// threads running now.
	MemoryBytes, Pids int64
}

// Usage measures nothing outside Linux: there are no cgroups.
func (s *Sandbox) Usage() Usage { return Usage{CPUSeconds: -1, MemoryBytes: -1, Pids: -1} }

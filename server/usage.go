package server

import (
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
)

// genUsage converts a sandbox's usage (extension sandboxes.usage) to the
// contract's type; negative (unmeasured) fields are left out.
func genUsage(u driver.Usage) *noxapi.SandboxUsage {
	out := &noxapi.SandboxUsage{}
	if u.CPUSeconds >= 0 {
		out.CPUSeconds = &u.CPUSeconds
	}
	if u.MemoryBytes >= 0 {
		out.MemoryBytes = &u.MemoryBytes
	}
	if u.Pids >= 0 {
		pids := int32(min(u.Pids, 1<<31-1))
		out.Pids = &pids
	}
	if u.StorageBytes >= 0 {
		out.StorageBytes = &u.StorageBytes
	}
	return out
}

package sandbox

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// Usage is a sandbox's resource use read from its cgroups. Negative
// fields are not measured (no such cgroup on this host).
type Usage struct {
	// CPUSeconds is the CPU time its processes (the init included) used
	// since it started.
	CPUSeconds float64
	// MemoryBytes is the memory its cgroup charges now; Pids the
	// processes and threads in it now.
	MemoryBytes, Pids int64
}

// Usage reads the sandbox's resource use: a few small cgroup files, no
// walk. A stopped sandbox has none (every field -1).
func (s *Sandbox) Usage() Usage {
	u := Usage{CPUSeconds: -1, MemoryBytes: -1, Pids: -1}
	if s.cg == nil || !s.Alive() {
		return u
	}
	return s.cg.usage()
}

// usage reads the sandbox cgroup's counters: cpu.stat's usage_usec,
// memory.current and pids.current on v2; cpuacct.usage (nanoseconds),
// memory.usage_in_bytes and pids.current on v1.
func (sc *sandboxCgroup) usage() Usage {
	u := Usage{CPUSeconds: -1, MemoryBytes: -1, Pids: -1}
	if sc.v2 {
		d := sc.dirs[""]
		if v, ok := readKeyed(d, "cpu.stat", "usage_usec"); ok {
			u.CPUSeconds = float64(v) / 1e6
		}
		u.MemoryBytes = readInt(d, "memory.current")
		u.Pids = readInt(d, "pids.current")
		return u
	}
	for _, c := range []string{"cpuacct", "cpu"} { // cpu when co-mounted with cpuacct
		if d := sc.dirs[c]; d != "" {
			if v := readInt(d, "cpuacct.usage"); v >= 0 {
				u.CPUSeconds = float64(v) / 1e9
				break
			}
		}
	}
	if d := sc.dirs["memory"]; d != "" {
		u.MemoryBytes = readInt(d, "memory.usage_in_bytes")
	}
	if d := sc.dirs["pids"]; d != "" {
		u.Pids = readInt(d, "pids.current")
	}
	return u
}

// readInt reads a cgroup file holding one non-negative integer; -1 when it
// cannot.
func readInt(dir, name string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return -1
	}
	v, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil || v < 0 {
		return -1
	}
	return v
}

// readKeyed reads the value of key in a flat-keyed cgroup file ("key
// value" lines).
func readKeyed(dir, name, key string) (int64, bool) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 0, false
	}
	for line := range bytes.Lines(b) {
		k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte(" "))
		if ok && string(k) == key {
			n, err := strconv.ParseInt(string(v), 10, 64)
			return n, err == nil && n >= 0
		}
	}
	return 0, false
}

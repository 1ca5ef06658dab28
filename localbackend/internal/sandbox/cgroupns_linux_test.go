package sandbox

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestCgroupNamespaceHidesHostPath: a command sees its cgroup relative to
// the sandbox's (v2: "0::/c<n>", its command cgroup below cmds), never the
// server's cgroup path, the Manager's directory (named after the server's
// pid) or a ".." out of its namespace's root.
func TestCgroupNamespaceHidesHostPath(t *testing.T) {
	for _, tc := range []struct {
		tier      Tier
		noCgroups bool
	}{{TierNamespaces, false}, {TierNamespaces, true}, {TierRootNamespaces, false}} {
		name := string(tc.tier)
		if tc.noCgroups {
			name += "-nocgroups"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if tc.tier == TierRootNamespaces && !isRoot() {
				t.Skip("needs root")
			}
			m, err := New(Options{Tier: tc.tier, StateDir: t.TempDir(), NoCgroups: tc.noCgroups})
			if err != nil {
				if os.Getenv("NOX_REQUIRE_ISOLATION") != "1" {
					t.Skip(err)
				}
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Close() })
			s, _ := start(t, m, key("cgns"), Limits{Pids: 64, MemoryBytes: 256 << 20})
			r := sh(t, s, "cat /proc/self/cgroup; echo ---; cat /proc/self/mountinfo")
			cg, mi, _ := strings.Cut(r.stdout, "---\n")
			t.Logf("/proc/self/cgroup inside:\n%s", cg)
			self, err := selfCgroups()
			if err != nil {
				t.Fatal(err)
			}
			leaks := []string{cgroupTopName, "m" + strconv.Itoa(os.Getpid()) + "-", "/.."}
			for _, p := range self {
				if p != "/" {
					leaks = append(leaks, p)
				}
			}
			for _, leak := range leaks {
				if strings.Contains(cg, leak) || strings.Contains(mi, leak) {
					t.Errorf("%q is visible inside:\n%s\n%s", leak, cg, mi)
				}
			}
			if m.Report().Cgroup == "v2" {
				if !regexp.MustCompile(`^0::/c[0-9]+\n$`).MatchString(cg) {
					t.Errorf("/proc/self/cgroup = %q, want 0::/c<n>", cg)
				}
			}
		})
	}
}

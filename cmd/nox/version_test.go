package main

import (
	"runtime/debug"
	"testing"
)

func TestResolveVersion(t *testing.T) {
	rev := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}
	for _, tc := range []struct {
		name string
		set  string
		info debug.BuildInfo
		want string
	}{
		{"set by ldflags", "1.4.0", debug.BuildInfo{Main: debug.Module{Version: "v9.9.9"}}, "1.4.0"},
		{"go install @version", defaultVersion, debug.BuildInfo{Main: debug.Module{Version: "v0.3.1"}}, "v0.3.1"},
		{"a checkout", defaultVersion, debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: rev}, defaultVersion + "+0123456789ab"},
		{"a modified checkout", defaultVersion, debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: append(rev, debug.BuildSetting{Key: "vcs.modified", Value: "true"})}, defaultVersion + "+0123456789ab-dirty"},
		{"nothing recorded", defaultVersion, debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, defaultVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolveVersion(tc.set, &tc.info); got != tc.want {
				t.Errorf("resolveVersion(%q) = %q, want %q", tc.set, got, tc.want)
			}
		})
	}
}

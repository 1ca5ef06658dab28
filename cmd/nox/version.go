package main

import (
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print nox's version",
		Action: func(c *cli.Context) error {
			if readGlobals(c).json {
				return a.printJSON(map[string]string{"version": noxVersion(), "sdk": sdk.Version, "go": runtime.Version()})
			}
			a.printf("nox %s (sdk %s, %s)\n", noxVersion(), sdk.Version, runtime.Version())
			return nil
		},
	}
}

// noxVersion is the version nox reports: the one the build set with
// -ldflags "-X main.version=...", else the module version `go install
// github.com/noxrunner/nox/cmd/nox@vX.Y.Z` recorded, else the default with
// the VCS revision the build recorded, if any.
func noxVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	return resolveVersion(version, info)
}

// resolveVersion is noxVersion's rule for a given -X version and build
// info.
func resolveVersion(set string, info *debug.BuildInfo) string {
	if set != defaultVersion {
		return set
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return set
	}
	return set + "+" + rev + dirty
}

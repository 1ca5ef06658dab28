package main

import (
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print nox's version",
		Action: func(c *cli.Context) error {
			if readGlobals(c).json {
				return a.printJSON(map[string]string{"version": version, "sdk": sdk.Version, "go": runtime.Version()})
			}
			a.printf("nox %s (sdk %s, %s)\n", version, sdk.Version, runtime.Version())
			return nil
		},
	}
}

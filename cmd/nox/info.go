package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

func (a *app) infoCommand() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "describe the backend: version, extensions, isolation, limits, images",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("info takes no arguments")
			}
			return a.withConn(c, func(cn *conn) error {
				info, err := cn.client.Capabilities(c.Context)
				if err != nil {
					return fmt.Errorf("backend info: %w", err)
				}
				return a.printInfo(readGlobals(c).json, cn.target, info)
			})
		},
	}
}

func (a *app) printInfo(asJSON bool, target string, info *sdk.Info) error {
	if asJSON {
		return a.printJSON(info)
	}
	a.printf("backend:     %s\n", target)
	if info.PlainV1 {
		a.printf("type:        plain NoxRunner v1 backend (no GET /v1/info, no extensions)\n")
		return nil
	}
	a.printf("api:         %s\n", info.APIVersion)
	a.printf("name:        %s %s\n", info.Backend.Name, info.Backend.Version)
	a.printf("extensions:  %s\n", strings.Join(info.Extensions, ", "))
	if iso := info.Isolation; iso != nil {
		tier := iso.Tier
		if !iso.Isolated {
			tier = a.color.red(tier + " (NOT ISOLATED: commands run on the host)")
		}
		a.printf("isolation:   %s\n", tier)
		for _, n := range iso.Notes {
			a.printf("             - %s\n", n)
		}
	}
	if len(info.Images) > 0 {
		a.printf("images:      %s\n", strings.Join(info.Images, ", "))
	}
	l := info.Limits
	if l.MaxTTL > 0 || l.DefaultTTL > 0 {
		a.printf("ttl:         default %s, max %s\n", l.DefaultTTL, l.MaxTTL)
	}
	if l.MaxTimeout > 0 || l.DefaultTimeout > 0 {
		a.printf("exec:        timeout default %s, max %s; output cap %d bytes; %d at once\n",
			l.DefaultTimeout, l.MaxTimeout, l.MaxOutputBytes, l.MaxConcurrentExecs)
	}
	if l.MaxConcurrentExecsPerSandbox > 0 {
		a.printf("per sandbox: %d commands at once\n", l.MaxConcurrentExecsPerSandbox)
	}
	if l.MaxUploadBytes > 0 {
		a.printf("upload:      max %d bytes, %d entries\n", l.MaxUploadBytes, l.MaxUploadEntries)
	}
	if l.MaxDownloadBytes > 0 {
		a.printf("download:    max %d bytes of file contents, %d entries\n", l.MaxDownloadBytes, l.MaxDownloadEntries)
	}
	if l.MaxListPageSize > 0 {
		a.printf("files:       %d entries a listing page\n", l.MaxListPageSize)
	}
	if l.MaxWatchesPerSandbox > 0 {
		a.printf("watch:       %d watches a sandbox, %d directories a watch, %d events queued\n",
			l.MaxWatchesPerSandbox, l.MaxWatchDirs, l.MaxWatchQueue)
	}
	if l.MaxProcessesPerSandbox > 0 || l.ProcessOutputBytes > 0 {
		a.printf("processes:   %d running a sandbox, %d records kept, %d bytes of output kept each, waits of up to %s\n",
			l.MaxProcessesPerSandbox, l.MaxProcessRecords, l.ProcessOutputBytes, l.MaxProcessWait)
	}
	if l.MaxStdinBytes > 0 {
		a.printf("exec stdin:  max %d bytes\n", l.MaxStdinBytes)
	}
	if len(l.EgressModes) > 0 || l.MaxEgressRules > 0 || l.MaxEgressConnections > 0 {
		modes := make([]string, len(l.EgressModes))
		for i, m := range l.EgressModes {
			modes[i] = string(m)
		}
		a.printf("egress:      modes %s; %d rules a policy, %d connections a sandbox\n",
			orDash(strings.Join(modes, ", ")), l.MaxEgressRules, l.MaxEgressConnections)
	}
	if l.MinCPU != "" || l.MinMemory != "" {
		a.printf("minimum:     cpu %s, memory %s\n", l.MinCPU, l.MinMemory)
	}
	if l.StallTimeout > 0 {
		a.printf("stalled:     clients cut after %s without progress\n", l.StallTimeout)
	}
	if l.HostPidsBudget > 0 || l.HostOpenFilesBudget > 0 || l.OpenFiles > 0 {
		a.printf("host budget: %d processes, %d open files (%d per process) for running sandboxes\n",
			l.HostPidsBudget, l.HostOpenFilesBudget, l.OpenFiles)
	}
	return nil
}

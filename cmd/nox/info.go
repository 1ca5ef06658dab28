package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

// infoJSON is the JSON form of sdk.Info.
type infoJSON struct {
	APIVersion     string           `json:"apiVersion,omitempty"`
	Backend        string           `json:"backend,omitempty"`
	BackendVersion string           `json:"backendVersion,omitempty"`
	PlainV1        bool             `json:"plainV1"`
	Extensions     []string         `json:"extensions"`
	Isolation      *isolationJSON   `json:"isolation,omitempty"`
	Limits         map[string]int64 `json:"limits,omitempty"`
	Images         []string         `json:"images,omitempty"`
}

type isolationJSON struct {
	Tier     string   `json:"tier"`
	Isolated bool     `json:"isolated"`
	Notes    []string `json:"notes,omitempty"`
}

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
	l := info.Limits
	limits := map[string]int64{}
	for k, v := range map[string]int64{
		"defaultTtlSeconds":     int64(l.DefaultTTL / time.Second),
		"maxTtlSeconds":         int64(l.MaxTTL / time.Second),
		"defaultTimeoutSeconds": int64(l.DefaultTimeout / time.Second),
		"maxTimeoutSeconds":     int64(l.MaxTimeout / time.Second),
		"maxOutputBytes":        l.MaxOutputBytes,
		"maxUploadBytes":        l.MaxUploadBytes,
		"maxUploadEntries":      l.MaxUploadEntries,
		"maxConcurrentExecs":    int64(l.MaxConcurrentExecs),
		"streamHeartbeatMs":     l.StreamHeartbeat.Milliseconds(),
	} {
		if v != 0 {
			limits[k] = v
		}
	}
	if asJSON {
		out := infoJSON{APIVersion: info.APIVersion, Backend: info.Backend.Name, BackendVersion: info.Backend.Version,
			PlainV1: info.PlainV1, Extensions: info.Extensions, Limits: limits, Images: info.Images}
		if out.Extensions == nil {
			out.Extensions = []string{}
		}
		if iso := info.Isolation; iso != nil {
			out.Isolation = &isolationJSON{Tier: iso.Tier, Isolated: iso.Isolated, Notes: iso.Notes}
		}
		return a.printJSON(out)
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
	if l.MaxTTL > 0 || l.DefaultTTL > 0 {
		a.printf("ttl:         default %s, max %s\n", l.DefaultTTL, l.MaxTTL)
	}
	if l.MaxTimeout > 0 || l.DefaultTimeout > 0 {
		a.printf("exec:        timeout default %s, max %s; output cap %d bytes; %d at once\n",
			l.DefaultTimeout, l.MaxTimeout, l.MaxOutputBytes, l.MaxConcurrentExecs)
	}
	if l.MaxUploadBytes > 0 {
		a.printf("upload:      max %d bytes, %d entries\n", l.MaxUploadBytes, l.MaxUploadEntries)
	}
	return nil
}

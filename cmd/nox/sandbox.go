package main

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

// sandboxID returns the command's first argument, the session id, and
// checks that exactly want arguments were given (-1: at least one).
func sandboxID(c *cli.Context, want int) (string, error) {
	n := c.NArg()
	if n == 0 {
		return "", usagef("%s: missing the sandbox's session ID", c.Command.Name)
	}
	if want > 0 && n != want {
		return "", usagef("%s: expected %d argument(s), got %d: %s", c.Command.Name, want, n, strings.Join(c.Args().Slice(), " "))
	}
	return c.Args().First(), nil
}

func (a *app) healthCommand() *cli.Command {
	return &cli.Command{
		Name:  "health",
		Usage: "check that the backend is up",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("health takes no arguments")
			}
			return a.withConn(c, func(cn *conn) error {
				if err := cn.client.Health(c.Context); err != nil {
					return fmt.Errorf("health check: %w", err)
				}
				if readGlobals(c).json {
					return a.printJSON(map[string]any{"ok": true, "backend": cn.target})
				}
				a.printf("%s %s is healthy\n", a.color.green("OK"), cn.target)
				return nil
			})
		},
	}
}

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

func (a *app) createCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a sandbox (or ensure it runs and refresh its TTL)",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "ttl", Value: int(sdk.DefaultTTL / time.Second), Usage: "seconds of inactivity before the sandbox expires"},
			&cli.StringFlag{Name: "image", Usage: "environment image (default: the backend's)"},
			&cli.StringFlag{Name: "cpu", Usage: "CPU limit, e.g. 500m or 2"},
			&cli.StringFlag{Name: "mem", Aliases: []string{"memory"}, Usage: "memory limit, e.g. 1Gi"},
			&cli.StringFlag{Name: "storage", Usage: "ephemeral storage limit, e.g. 2Gi"},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the sandbox runs commands"},
			&cli.DurationFlag{Name: "wait-timeout", Value: 60 * time.Second, Usage: "how long --wait waits"},
		},
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 1)
			if err != nil {
				return err
			}
			if c.Int("ttl") < 0 {
				return usagef("create: --ttl must be a number of seconds >= 0")
			}
			opts := sdk.CreateOptions{
				TTL:   time.Duration(c.Int("ttl")) * time.Second,
				Image: c.String("image"), CPU: c.String("cpu"), Memory: c.String("mem"), Storage: c.String("storage"),
			}
			return a.withConn(c, func(cn *conn) error {
				sb := cn.client.Sandbox(id)
				res, err := sb.Create(c.Context, opts)
				if err != nil {
					return onSandbox(id, fmt.Errorf("create: %w", err))
				}
				if c.Bool("wait") {
					if err := sb.WaitReady(c.Context, sdk.WaitOptions{Timeout: c.Duration("wait-timeout")}); err != nil {
						return onSandbox(id, fmt.Errorf("waiting until ready: %w", err))
					}
				}
				if readGlobals(c).json {
					return a.printJSON(map[string]any{"sessionId": id, "podName": res.PodName,
						"expiresAt": jsonTime(res.ExpiresAt), "ready": c.Bool("wait")})
				}
				a.printf("%s sandbox %q (pod %s), expires %s\n", a.color.green("created"), id, res.PodName, timeOrDash(res.ExpiresAt))
				return nil
			})
		},
	}
}

// statusJSON is the JSON form of sdk.SandboxStatus.
type statusJSON struct {
	SessionID    string         `json:"sessionId"`
	PodName      string         `json:"podName,omitempty"`
	State        string         `json:"state"`
	Image        string         `json:"image,omitempty"`
	CreatedAt    string         `json:"createdAt,omitempty"`
	LastActiveAt string         `json:"lastActiveAt,omitempty"`
	ExpiresAt    string         `json:"expiresAt,omitempty"`
	TTLSeconds   int64          `json:"ttlSeconds,omitempty"`
	Limits       map[string]any `json:"limits,omitempty"`
	RunningExecs int            `json:"runningExecs"`
}

func toStatusJSON(s sdk.SandboxStatus) statusJSON {
	lim := map[string]any{}
	if s.Limits.CPU != "" {
		lim["cpu"] = s.Limits.CPU
	}
	if s.Limits.Memory != "" {
		lim["memory"] = s.Limits.Memory
	}
	if s.Limits.EphemeralStorage != "" {
		lim["ephemeralStorage"] = s.Limits.EphemeralStorage
	}
	if s.Limits.PIDs != 0 {
		lim["pids"] = s.Limits.PIDs
	}
	if len(s.Limits.Unenforced) > 0 {
		lim["unenforced"] = s.Limits.Unenforced
	}
	return statusJSON{SessionID: s.SessionID, PodName: s.PodName, State: string(s.State), Image: s.Image,
		CreatedAt: jsonTime(s.CreatedAt), LastActiveAt: jsonTime(s.LastActiveAt), ExpiresAt: jsonTime(s.ExpiresAt),
		TTLSeconds: int64(s.TTL / time.Second), Limits: lim, RunningExecs: s.RunningExecs}
}

// needExtension fails with a clear line when the backend lacks ext.
func needExtension(c *cli.Context, cn *conn, ext, what string) error {
	ok, err := cn.client.Supports(c.Context, ext)
	if err != nil {
		return fmt.Errorf("backend info: %w", err)
	}
	if !ok {
		return fmt.Errorf("%s: the backend does not support it (extension %s)", what, ext)
	}
	return nil
}

func (a *app) getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "show a sandbox's state, timestamps and limits",
		ArgsUsage: "ID",
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 1)
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				if err := needExtension(c, cn, sdk.ExtSandboxesGet, "get"); err != nil {
					return err
				}
				s, err := cn.client.Get(c.Context, id)
				if err != nil {
					return onSandbox(id, err)
				}
				if readGlobals(c).json {
					return a.printJSON(toStatusJSON(*s))
				}
				a.printf("session:     %s\n", s.SessionID)
				a.printf("pod:         %s\n", s.PodName)
				a.printf("state:       %s\n", a.stateColor(s.State))
				a.printf("image:       %s\n", s.Image)
				a.printf("created:     %s\n", timeOrDash(s.CreatedAt))
				a.printf("last active: %s\n", timeOrDash(s.LastActiveAt))
				a.printf("expires:     %s (ttl %s)\n", timeOrDash(s.ExpiresAt), s.TTL)
				a.printf("limits:      cpu %s, memory %s, storage %s, pids %d\n",
					orDash(s.Limits.CPU), orDash(s.Limits.Memory), orDash(s.Limits.EphemeralStorage), s.Limits.PIDs)
				if len(s.Limits.Unenforced) > 0 {
					a.printf("unenforced:  %s\n", strings.Join(s.Limits.Unenforced, ", "))
				}
				a.printf("running:     %d command(s)\n", s.RunningExecs)
				return nil
			})
		},
	}
}

func (a *app) stateColor(s sdk.SandboxState) string {
	switch s {
	case sdk.StateReady:
		return a.color.green(string(s))
	case sdk.StateTerminating:
		return a.color.red(string(s))
	}
	return a.color.yellow(string(s))
}

func (a *app) lsCommand() *cli.Command {
	return &cli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "list the sandboxes",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("ls takes no arguments")
			}
			return a.withConn(c, func(cn *conn) error {
				if err := needExtension(c, cn, sdk.ExtSandboxesList, "ls"); err != nil {
					return err
				}
				var all []sdk.SandboxStatus
				for s, err := range cn.client.List(c.Context, sdk.ListOptions{}) {
					if err != nil {
						return fmt.Errorf("listing sandboxes: %w", err)
					}
					all = append(all, s)
				}
				if readGlobals(c).json {
					out := make([]statusJSON, 0, len(all))
					for _, s := range all {
						out = append(out, toStatusJSON(s))
					}
					return a.printJSON(out)
				}
				if len(all) == 0 {
					a.printf("no sandboxes\n")
					return nil
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SESSION\tSTATE\tIMAGE\tEXPIRES\tRUNNING")
				for _, s := range all {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", s.SessionID, s.State, orDash(s.Image), timeOrDash(s.ExpiresAt), s.RunningExecs)
				}
				if err := tw.Flush(); err != nil {
					return fmt.Errorf("writing the list: %w", err)
				}
				return nil
			})
		},
	}
}

func (a *app) touchCommand() *cli.Command {
	return &cli.Command{
		Name:      "touch",
		Usage:     "extend a sandbox's TTL",
		ArgsUsage: "ID",
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 1)
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				res, err := cn.client.Touch(c.Context, id)
				if err != nil {
					return onSandbox(id, err)
				}
				if readGlobals(c).json {
					return a.printJSON(map[string]any{"sessionId": id, "expiresAt": jsonTime(res.ExpiresAt), "message": res.Message})
				}
				a.printf("%s sandbox %q, expires %s\n", a.color.green("touched"), id, timeOrDash(res.ExpiresAt))
				return nil
			})
		},
	}
}

func (a *app) deleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Aliases:   []string{"rm"},
		Usage:     "delete a sandbox and its files",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "ignore-missing", Usage: "succeed when the sandbox does not exist"},
		},
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 1)
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				err := cn.client.Delete(c.Context, id)
				missing := errors.Is(err, sdk.ErrNotFound)
				if err != nil && !(missing && c.Bool("ignore-missing")) {
					return onSandbox(id, err)
				}
				if readGlobals(c).json {
					return a.printJSON(map[string]any{"sessionId": id, "deleted": !missing})
				}
				if missing {
					a.printf("sandbox %q did not exist\n", id)
					return nil
				}
				a.printf("%s sandbox %q\n", a.color.green("deleted"), id)
				return nil
			})
		},
	}
}

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

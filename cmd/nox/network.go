package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/sdk"
)

// egressModes are the modes --egress takes.
var egressModes = []sdk.EgressMode{sdk.EgressNone, sdk.EgressAllowlist, sdk.EgressOpen}

// policyFlags are the flags of an egress policy (nox create, nox network
// set).
func policyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "egress", Usage: "egress policy mode: none (nothing outside the sandbox is reachable), allowlist (only --allow) or open (all but --deny)"},
		&cli.StringSliceFlag{Name: "allow", Usage: "a destination of mode allowlist: a domain, *.domain, IP address or CIDR prefix (repeatable, or comma-separated)"},
		&cli.StringSliceFlag{Name: "deny", Usage: "a destination refused in modes allowlist and open (repeatable, or comma-separated)"},
	}
}

// policyOf reads the policy flags: nil when none is set. --allow and
// --deny need --egress, which must name a mode.
func policyOf(c *cli.Context, cmd string) (*sdk.NetworkPolicy, error) {
	allow, deny := listFlag(c, "allow"), listFlag(c, "deny")
	if !c.IsSet("egress") {
		if len(allow) > 0 || len(deny) > 0 {
			return nil, usagef("%s: --allow and --deny need --egress (allowlist or open)", cmd)
		}
		return nil, nil
	}
	mode := sdk.EgressMode(c.String("egress"))
	if !slices.Contains(egressModes, mode) {
		return nil, usagef("%s: --egress %q: want none, allowlist or open", cmd, mode)
	}
	return &sdk.NetworkPolicy{Egress: mode, Allow: allow, Deny: deny}, nil
}

// listFlag is a repeatable flag's values, each split at commas, without
// empty entries.
func listFlag(c *cli.Context, name string) []string {
	var out []string
	for _, v := range c.StringSlice(name) {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func (a *app) networkCommand() *cli.Command {
	return &cli.Command{
		Name:      "network",
		Usage:     "show a sandbox's egress policy (nox network set ID replaces it)",
		ArgsUsage: "ID",
		Description: `Prints the sandbox's egress policy (extension network.egress): mode none
(the default: nothing outside the sandbox is reachable and no name
resolves), allowlist (only the destinations allowed) or open (all but the
destinations denied). Destinations are domain names (pypi.org), wildcards
(*.github.com: names under github.com), IP addresses and CIDR prefixes.

   nox create demo --egress allowlist --allow pypi.org,*.pythonhosted.org
   nox network demo
   nox network set demo --egress open --deny 203.0.113.0/24
   nox network set demo --egress none`,
		Action: func(c *cli.Context) error {
			id, err := sandboxID(c, 1)
			if err != nil {
				return err
			}
			return a.withConn(c, func(cn *conn) error {
				p, err := cn.client.Sandbox(id).Network(c.Context)
				if err != nil {
					return onSandbox(id, fmt.Errorf("network: %w", err))
				}
				return a.printPolicy(c, id, p)
			})
		},
		Subcommands: []*cli.Command{{
			Name:      "set",
			Usage:     "replace a sandbox's egress policy",
			ArgsUsage: "ID",
			Description: `Replaces the whole policy: lists not given are empty. It takes effect at
once for new connections; commands started while the policy was none lack
the proxy settings, so start them again.`,
			Flags: policyFlags(),
			Action: func(c *cli.Context) error {
				id, err := sandboxID(c, 1)
				if err != nil {
					return err
				}
				if !c.IsSet("egress") {
					return usagef("network set: --egress is required (none, allowlist or open)")
				}
				p, err := policyOf(c, "network set")
				if err != nil {
					return err
				}
				return a.withConn(c, func(cn *conn) error {
					got, err := cn.client.Sandbox(id).SetNetwork(c.Context, *p)
					if err != nil {
						return onSandbox(id, fmt.Errorf("network set: %w", err))
					}
					return a.printPolicy(c, id, got)
				})
			},
		}},
	}
}

// printPolicy prints a sandbox's policy, as JSON with --json.
func (a *app) printPolicy(c *cli.Context, id string, p sdk.NetworkPolicy) error {
	if readGlobals(c).json {
		return a.printJSON(aboutSandbox{id: id, v: p})
	}
	a.printf("egress: %s\n", p.Egress)
	a.printf("allow:  %s\n", orDash(strings.Join(p.Allow, ", ")))
	a.printf("deny:   %s\n", orDash(strings.Join(p.Deny, ", ")))
	return nil
}

// policyLine is a policy on one line: "allowlist (allow a, b; deny c)".
func policyLine(p sdk.NetworkPolicy) string {
	var parts []string
	if len(p.Allow) > 0 {
		parts = append(parts, "allow "+strings.Join(p.Allow, ", "))
	}
	if len(p.Deny) > 0 {
		parts = append(parts, "deny "+strings.Join(p.Deny, ", "))
	}
	if len(parts) == 0 {
		return string(p.Egress)
	}
	return fmt.Sprintf("%s (%s)", p.Egress, strings.Join(parts, "; "))
}

package main

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/noxrunner/nox/localbackend"
)

// egressFlags parses serve's flags from args, as nox does (no splitting
// of slice flags by urfave), and reads the egress ones.
func egressFlags(t *testing.T, args ...string) (localbackend.Config, error) {
	t.Helper()
	var cfg localbackend.Config
	var err error
	app := &cli.App{Flags: serveFlags(), DisableSliceFlagSeparator: true, Action: func(c *cli.Context) error {
		cfg = localbackend.DefaultConfig()
		err = egressConfig(c, &cfg)
		return nil
	}}
	if rerr := app.Run(append([]string{"serve"}, args...)); rerr != nil {
		t.Fatalf("flags %v: %v", args, rerr)
	}
	return cfg, err
}

func TestServeEgressFlags(t *testing.T) {
	t.Parallel()
	d := localbackend.DefaultConfig()
	cfg, err := egressFlags(t)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.EgressModes, d.EgressModes) || cfg.MaxEgressRules != d.MaxEgressRules || cfg.MaxEgressConnections != d.MaxEgressConnections ||
		cfg.EgressOpen != nil || cfg.EgressPermit != nil || cfg.EgressNetns != "" || cfg.EgressResolver != "" {
		t.Errorf("defaults: %v %d %d %v %v %q %q", cfg.EgressModes, cfg.MaxEgressRules, cfg.MaxEgressConnections, cfg.EgressOpen, cfg.EgressPermit, cfg.EgressNetns, cfg.EgressResolver)
	}
	cfg, err = egressFlags(t, "--egress-modes", "none,allowlist", "--max-egress-rules", "8", "--max-egress-connections", "16",
		"--egress-open", "10.1.2.3/8, 169.254.169.254/32", "--egress-open", "fd00::/8",
		"--egress-permit", "*.corp.test,pypi.org", "--egress-netns", "/run/netns/up", "--egress-resolver", "192.0.2.53:53")
	if err != nil {
		t.Fatal(err)
	}
	wantOpen := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("169.254.169.254/32"), netip.MustParsePrefix("fd00::/8")}
	if !slices.Equal(cfg.EgressModes, []string{"none", "allowlist"}) || cfg.MaxEgressRules != 8 || cfg.MaxEgressConnections != 16 ||
		!slices.Equal(cfg.EgressOpen, wantOpen) || !slices.Equal(cfg.EgressPermit, []string{"*.corp.test", "pypi.org"}) ||
		cfg.EgressNetns != "/run/netns/up" || cfg.EgressResolver != "192.0.2.53:53" {
		t.Errorf("parsed: %v %d %d %v %v %q %q", cfg.EgressModes, cfg.MaxEgressRules, cfg.MaxEgressConnections, cfg.EgressOpen, cfg.EgressPermit, cfg.EgressNetns, cfg.EgressResolver)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--egress-open", "10.0.0.1"}, "--egress-open"},
		{[]string{"--egress-open", "example.com"}, "--egress-open"},
		{[]string{"--egress-resolver", "192.0.2.53"}, "--egress-resolver"},
		{[]string{"--egress-resolver", "dns.example:53"}, "--egress-resolver"},
	} {
		_, err := egressFlags(t, tc.args...)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error naming %s", tc.args, err, tc.want)
		}
	}
}

// TestServeEgressModesChecked: modes the backend refuses stop serve
// before it starts.
func TestServeEgressModesChecked(t *testing.T) {
	r := nox(t, "", "--data-dir", t.TempDir(), "serve", "--listen", "127.0.0.1:0", "--egress-modes", "allowlist,open")
	if r.code == 0 || !strings.Contains(r.stderr, "EgressModes") {
		t.Errorf("serve --egress-modes without none: exit %d, stderr %q", r.code, r.stderr)
	}
}

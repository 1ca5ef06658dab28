package egress

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		p       driver.NetworkPolicy
		wantErr string // substring; "" means valid
	}{
		{"empty", driver.NetworkPolicy{}, ""},
		{"modes", driver.NetworkPolicy{Egress: api.EgressOpen}, ""},
		{"bad mode", driver.NetworkPolicy{Egress: "all"}, `net.egress: "all" is not one of`},
		{"names", driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"pypi.org", "PyPI.org.", "*.github.com", "*.Example.COM.", "a-b.c0", "x"}}, ""},
		{"addresses", driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"192.0.2.7", "2001:db8::1", "10.1.2.0/24", "10.1.2.3/24", "2001:db8::/32", "::ffff:192.0.2.0/120"}}, ""},
		{"bad wildcard middle", driver.NetworkPolicy{Allow: []string{"a.*.com"}}, `net.allow[0]: "a.*.com" is not`},
		{"bare star", driver.NetworkPolicy{Allow: []string{"*"}}, `net.allow[0]`},
		{"star only dot", driver.NetworkPolicy{Allow: []string{"*."}}, `net.allow[0]`},
		{"double wildcard", driver.NetworkPolicy{Allow: []string{"*.*.com"}}, `net.allow[0]`},
		{"underscore", driver.NetworkPolicy{Allow: []string{"ok.com", "_dmarc.x.com"}}, `net.allow[1]: "_dmarc.x.com"`},
		{"leading hyphen", driver.NetworkPolicy{Deny: []string{"-a.com"}}, `net.deny[0]`},
		{"trailing hyphen", driver.NetworkPolicy{Deny: []string{"a-.com"}}, `net.deny[0]`},
		{"empty label", driver.NetworkPolicy{Deny: []string{"a..com"}}, `net.deny[0]`},
		{"label 64", driver.NetworkPolicy{Deny: []string{strings.Repeat("a", 64) + ".com"}}, `net.deny[0]`},
		{"label 63", driver.NetworkPolicy{Deny: []string{strings.Repeat("a", 63) + ".com"}}, ""},
		{"name 254", driver.NetworkPolicy{Deny: []string{longName(254)}}, `net.deny[0]`},
		{"name 253", driver.NetworkPolicy{Deny: []string{longName(253)}}, ""},
		{"numeric tld", driver.NetworkPolicy{Deny: []string{"1.2.3"}}, `net.deny[0]`},
		{"bad ip", driver.NetworkPolicy{Deny: []string{"256.1.1.1"}}, `net.deny[0]`},
		{"zone", driver.NetworkPolicy{Deny: []string{"fe80::1%eth0"}}, `net.deny[0]`},
		{"bad bits", driver.NetworkPolicy{Deny: []string{"10.0.0.0/33"}}, `net.deny[0]`},
		{"url", driver.NetworkPolicy{Deny: []string{"http://x.com"}}, `net.deny[0]`},
		{"port", driver.NetworkPolicy{Deny: []string{"x.com:443"}}, `net.deny[0]`},
		{"space", driver.NetworkPolicy{Deny: []string{"x .com"}}, `net.deny[0]`},
		{"empty entry", driver.NetworkPolicy{Deny: []string{""}}, `net.deny[0]: ""`},
		{"unicode", driver.NetworkPolicy{Deny: []string{"bücher.de"}}, `net.deny[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Validate(tt.p, "net.")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, driver.ErrInvalidArgument) {
				t.Fatalf("Validate: %v, want an ErrInvalidArgument containing %q", err, tt.wantErr)
			}
		})
	}
}

// longName returns a valid-looking domain name of n (192 < n < 256)
// characters: three labels of 63 and one of n-192.
func longName(n int) string {
	return strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", n-192)
}

func TestLongName(t *testing.T) {
	t.Parallel()
	for _, n := range []int{253, 254} {
		if s := longName(n); len(s) != n {
			t.Fatalf("longName(%d) has %d characters", n, len(s))
		} else if _, ok := normName(s); ok != (n <= 253) {
			t.Fatalf("normName(longName(%d)) ok = %v", n, ok)
		}
	}
}

func TestCompile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		r       Rules
		p       driver.NetworkPolicy
		wantErr string
	}{
		{"no rules", Rules{}, driver.NetworkPolicy{Egress: "open"}, ""},
		{"mode permitted", Rules{Modes: []string{"none", "allowlist"}}, driver.NetworkPolicy{Egress: "allowlist"}, ""},
		{"empty mode is none", Rules{Modes: []string{"none"}}, driver.NetworkPolicy{}, ""},
		{"mode refused", Rules{Modes: []string{"none", "allowlist"}}, driver.NetworkPolicy{Egress: "open"}, `x.egress: mode "open" is not permitted`},
		{"empty mode refused", Rules{Modes: []string{"allowlist"}}, driver.NetworkPolicy{}, `x.egress: mode "none"`},
		{"max rules ok", Rules{MaxRules: 2}, driver.NetworkPolicy{Allow: []string{"a.com"}, Deny: []string{"b.com"}}, ""},
		{"max rules deny", Rules{MaxRules: 2}, driver.NetworkPolicy{Allow: []string{"a.com"}, Deny: []string{"b.com", "c.com"}}, `x.deny: 3 entries`},
		{"max rules allow", Rules{MaxRules: 1}, driver.NetworkPolicy{Allow: []string{"a.com", "b.com"}}, `x.allow: 2 entries`},
		{"syntax first", Rules{MaxRules: 1}, driver.NetworkPolicy{Allow: []string{"a..com", "b.com"}}, `x.allow[0]`},
		{"permit name", Rules{Permit: []string{"pypi.org", "*.github.com", "10.0.0.0/8"}}, driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"PyPI.org", "api.github.com", "*.github.com", "*.x.github.com", "10.1.0.0/16", "10.2.3.4"}, Deny: []string{"anything.else"}}, ""},
		{"permit open refused", Rules{Permit: []string{"*.com"}}, driver.NetworkPolicy{Egress: "open"}, `x.egress: mode "open" is not permitted`},
		{"permit outside", Rules{Permit: []string{"pypi.org"}}, driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"pypi.org", "evil.org"}}, `x.allow[1]: "evil.org" is outside`},
		{"permit wildcard not parent", Rules{Permit: []string{"*.github.com"}}, driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"github.com"}}, `x.allow[0]`},
		{"permit wider wildcard", Rules{Permit: []string{"*.x.github.com"}}, driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"*.github.com"}}, `x.allow[0]`},
		{"permit name not wildcard", Rules{Permit: []string{"github.com"}}, driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"*.github.com"}}, `x.allow[0]`},
		{"permit wider prefix", Rules{Permit: []string{"10.0.0.0/16"}}, driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"10.0.0.0/8"}}, `x.allow[0]`},
		{"permit prefix not name", Rules{Permit: []string{"0.0.0.0/0"}}, driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"a.com"}}, `x.allow[0]`},
		{"permit checked in mode none", Rules{Permit: []string{"a.com"}}, driver.NetworkPolicy{Allow: []string{"b.com"}}, `x.allow[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := tt.r.Compile(tt.p, "x.")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				if p == nil {
					t.Fatal("Compile: nil policy")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, driver.ErrInvalidArgument) {
				t.Fatalf("Compile: %v, want an ErrInvalidArgument containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRulesCheck(t *testing.T) {
	t.Parallel()
	for _, r := range []Rules{
		{Modes: []string{"sometimes"}},
		{Modes: []string{""}},
		{MaxRules: -1},
		{Permit: []string{"a..b"}},
		{HostAddrs: []netip.Addr{{}}},
	} {
		if err := r.Check(); err == nil {
			t.Errorf("%+v: Check passed", r)
		}
		if _, err := r.Compile(driver.NetworkPolicy{}, ""); err == nil || errors.Is(err, driver.ErrInvalidArgument) {
			t.Errorf("%+v: Compile: %v, want an operator error", r, err)
		}
	}
}

func TestSpec(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, Rules{}, driver.NetworkPolicy{})
	if got := p.Spec(); !reflect.DeepEqual(got, driver.NetworkPolicy{Egress: api.EgressNone}) || p.Mode() != api.EgressNone {
		t.Errorf("Spec() = %#v, Mode() = %q", got, p.Mode())
	}
	in := driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"PyPI.org."}, Deny: []string{}}
	p = mustCompile(t, Rules{}, in)
	got := p.Spec()
	if !reflect.DeepEqual(got, in) || got.Deny == nil {
		t.Errorf("Spec() = %#v, want %#v", got, in)
	}
	got.Allow[0] = "changed"
	if p.Spec().Allow[0] != "PyPI.org." {
		t.Error("Spec() shares its slices")
	}
	in.Allow[0] = "changed"
	if p.Spec().Allow[0] != "PyPI.org." {
		t.Error("Compile kept the caller's slice")
	}
}

func mustCompile(t testing.TB, r Rules, p driver.NetworkPolicy) *Policy {
	t.Helper()
	pol, err := r.Compile(p, "")
	if err != nil {
		t.Fatalf("Compile(%+v): %v", p, err)
	}
	return pol
}

func TestForbidden(t *testing.T) {
	t.Parallel()
	forbidden := []string{
		"0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "127.0.0.1", "127.1.2.3",
		"172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.255",
		"169.254.169.254", "169.254.0.1", "192.0.0.8", "198.18.0.1", "198.19.255.255",
		"224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
		"::", "::1", "::127.0.0.1", "fc00::1", "fd00:ec2::254", "fd12:3456::1", "fe80::1", "fe80::1%eth0",
		"febf::1", "fec0::1", "ff02::1", "ff0e::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "64:ff9b:1::1",
		"2002:7f00:1::1", "2002:a9fe:a9fe::", "2002:c0a8:101::1",
	}
	allowed := []string{
		"1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
		"172.15.255.255", "172.32.0.0", "192.167.255.255", "192.169.0.0", "169.253.255.255",
		"198.17.255.255", "198.20.0.0", "223.255.255.255", "192.0.2.7", "151.101.0.223",
		"2001:db8::1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
		"fbff::1", "fe00::1",
	}
	for _, s := range forbidden {
		if !Forbidden(netip.MustParseAddr(s)) {
			t.Errorf("Forbidden(%s) = false", s)
		}
	}
	for _, s := range allowed {
		if Forbidden(netip.MustParseAddr(s)) {
			t.Errorf("Forbidden(%s) = true", s)
		}
	}
}

// decision is one expected outcome of AllowsConn(name, addr); name ""
// is a connection by address, addr "" a name-only check (AllowsName).
type decision struct {
	name, addr string
	want       bool
}

func TestDecisions(t *testing.T) {
	t.Parallel()
	host := netip.MustParseAddr("203.0.113.9")
	tests := []struct {
		label string
		r     Rules
		p     driver.NetworkPolicy
		cases []decision
	}{
		{"none", Rules{}, driver.NetworkPolicy{Egress: "none", Allow: []string{"a.com", "0.0.0.0/0"}}, []decision{
			{"a.com", "", false}, {"a.com", "1.1.1.1", false}, {"", "1.1.1.1", false}, {"", "::ffff:1.1.1.1", false},
		}},
		{"open", Rules{HostAddrs: []netip.Addr{host}}, driver.NetworkPolicy{Egress: "open", Deny: []string{"evil.com", "*.bad.org", "1.2.3.0/24", "2001:db8:bad::/48"}}, []decision{
			{"good.com", "", true}, {"GOOD.com.", "", true}, {"good.com", "8.8.8.8", true}, {"", "8.8.8.8", true},
			{"evil.com", "", false}, {"EVIL.com.", "8.8.8.8", false}, {"sub.evil.com", "", true},
			{"bad.org", "", true}, {"x.bad.org", "", false}, {"y.x.bad.org", "8.8.8.8", false},
			{"", "1.2.3.4", false}, {"good.com", "1.2.3.4", false}, {"", "::ffff:1.2.3.4", false},
			{"", "64:ff9b::102:304", false}, {"", "2002:102:304::1", false}, {"", "2001:db8:bad::1", false},
			{"", "2001:db8:900d::1", true},
			{"good.com", "127.0.0.1", false}, {"", "127.0.0.1", false}, {"", "169.254.169.254", false},
			{"", "::ffff:127.0.0.1", false}, {"", "64:ff9b::7f00:1", false}, {"", "10.0.0.1", false},
			{"", "203.0.113.9", false}, {"", "::ffff:203.0.113.9", false}, {"good.com", "203.0.113.9", false},
			{"", "203.0.113.10", true},
			{"not a name", "", false}, {"", "", false}, {"localhost", "", false}, {"x.LOCALHOST.", "", false}, {"localhost.com", "", true},
		}},
		{"allowlist", Rules{}, driver.NetworkPolicy{Egress: "allowlist",
			Allow: []string{"pypi.org", "*.github.com", "192.0.2.0/24", "2001:db8::/32", "10.0.0.1", "*.both.com"},
			Deny:  []string{"evil.github.com", "*.corp.github.com", "192.0.2.128/25", "bad.net", "no.both.com"}}, []decision{
			{"pypi.org", "", true}, {"PYPI.ORG.", "", true}, {"www.pypi.org", "", false}, {"pypi.org.evil", "", false},
			{"github.com", "", false}, {"api.github.com", "", true}, {"a.b.github.com", "", true}, {"xgithub.com", "", false},
			{"evil.github.com", "", false}, {"x.evil.github.com", "", true}, {"corp.github.com", "", true}, {"x.corp.github.com", "", false},
			{"pypi.org", "151.101.0.223", true}, {"pypi.org", "192.168.0.1", false}, {"pypi.org", "127.0.0.1", false},
			{"pypi.org", "::ffff:10.0.0.2", false}, {"pypi.org", "192.0.2.200", false},
			{"", "151.101.0.223", false}, {"", "192.0.2.7", true}, {"", "::ffff:192.0.2.7", true}, {"", "192.0.2.200", false},
			{"", "2001:db8::7", true}, {"", "2001:db9::7", false},
			{"other.com", "192.0.2.7", true}, {"other.com", "8.8.8.8", false}, {"bad.net", "192.0.2.7", false},
			{"", "10.0.0.1", false}, {"pypi.org", "10.0.0.1", false},
			{"no.both.com", "", false}, {"yes.both.com", "", true},
		}},
		{"open ranges", Rules{Open: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::ffff:10.1.0.0/112"), netip.MustParsePrefix("203.0.113.9/32")}, HostAddrs: []netip.Addr{host}},
			driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"local.test", "10.1.2.3", "127.0.0.5"}, Deny: []string{"127.0.0.6"}}, []decision{
				{"local.test", "127.0.0.1", true}, {"local.test", "::ffff:127.0.0.1", true}, {"local.test", "64:ff9b::7f00:1", true},
				{"local.test", "10.1.0.1", true}, {"local.test", "10.2.0.1", false}, {"local.test", "::1", false},
				{"", "10.1.2.3", true}, {"", "10.1.2.4", false}, {"", "127.0.0.5", true}, {"", "127.0.0.1", false},
				{"local.test", "127.0.0.6", false}, {"local.test", "203.0.113.9", true},
			}},
		{"open mode with open ranges", Rules{Open: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
			driver.NetworkPolicy{Egress: "open"}, []decision{
				{"", "127.0.0.1", true}, {"x.test", "127.0.0.1", true}, {"", "10.0.0.1", false}, {"", "::1", false},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			t.Parallel()
			p := mustCompile(t, tt.r, tt.p)
			for _, c := range tt.cases {
				var got bool
				if c.addr == "" {
					got = p.AllowsName(c.name)
				} else {
					got = p.AllowsConn(c.name, netip.MustParseAddr(c.addr))
					if c.name == "" && p.AllowsAddr(netip.MustParseAddr(c.addr)) != got {
						t.Errorf("AllowsAddr(%s) disagrees with AllowsConn", c.addr)
					}
				}
				if got != c.want {
					t.Errorf("allows(%q, %q) = %v, want %v", c.name, c.addr, got, c.want)
				}
			}
		})
	}
}

func TestResolvable(t *testing.T) {
	t.Parallel()
	names := mustCompile(t, Rules{}, driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"a.com"}})
	prefixes := mustCompile(t, Rules{}, driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"a.com", "192.0.2.0/24"}, Deny: []string{"d.com"}})
	none := mustCompile(t, Rules{}, driver.NetworkPolicy{Allow: []string{"a.com", "0.0.0.0/0"}})
	for _, c := range []struct {
		p    *Policy
		name string
		want bool
	}{
		{names, "a.com", true}, {names, "b.com", false},
		{prefixes, "a.com", true}, {prefixes, "b.com", true}, {prefixes, "d.com", false}, {prefixes, "bad name", false},
		{none, "a.com", false}, {none, "b.com", false},
	} {
		if got := c.p.Resolvable(c.name); got != c.want {
			t.Errorf("%v Resolvable(%q) = %v, want %v", c.p.Spec(), c.name, got, c.want)
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"pypi.org", "*.github.com", "10.0.0.0/8", "::1", "::ffff:1.2.3.4/120", "a..b", "*.", "1.2.3", "fe80::1%eth0", "x.com."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := Validate(driver.NetworkPolicy{Egress: "allowlist", Allow: []string{s}}, "")
		if err != nil {
			if !errors.Is(err, driver.ErrInvalidArgument) || !strings.HasPrefix(err.Error(), "allow[0]: ") {
				t.Fatalf("Validate(%q): %v", s, err)
			}
			return
		}
		e, _ := parseEntry(s)
		if e.name != "" && e.name != strings.ToLower(strings.TrimSuffix(s, ".")) {
			t.Fatalf("%q: name %q", s, e.name)
		}
		// A valid entry validates the same again in its parsed form.
		again := e.name
		switch {
		case e.wild != "":
			again = "*." + e.wild
		case e.prefix.IsValid():
			again = e.prefix.String()
		}
		if e2, err := parseEntry(again); err != nil || e2 != e {
			t.Fatalf("%q parses to %+v; %q to %+v, %v", s, e, again, e2, err)
		}
	})
}

func FuzzCompile(f *testing.F) {
	f.Add("allowlist", "pypi.org", "*.github.com", "api.github.com", "140.82.112.3")
	f.Add("open", "10.0.0.0/8", "evil.com", "evil.com", "10.0.0.1")
	f.Add("none", "::/0", "::1", "x", "::1")
	f.Fuzz(func(t *testing.T, mode, allow, deny, name, addr string) {
		p, err := Rules{Open: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}.Compile(driver.NetworkPolicy{Egress: mode, Allow: []string{allow}, Deny: []string{deny}}, "")
		if err != nil {
			if !errors.Is(err, driver.ErrInvalidArgument) {
				t.Fatalf("Compile: %v", err)
			}
			return
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		conn := p.AllowsConn(name, ip)
		if conn && p.Mode() == api.EgressNone {
			t.Fatalf("mode none allowed %q %s", name, ip)
		}
		if conn && Forbidden(ip) && !netip.MustParsePrefix("127.0.0.0/8").Contains(ip.Unmap()) {
			t.Fatalf("%+v allowed forbidden %q %s", p.Spec(), name, ip)
		}
		if d, err := parseEntry(deny); err == nil && conn {
			if d.prefix.IsValid() && d.prefix.Contains(ip.WithZone("").Unmap()) {
				t.Fatalf("%+v allowed denied %s", p.Spec(), ip)
			}
			if n, ok := normName(name); ok && d.name == n {
				t.Fatalf("%+v allowed denied %q", p.Spec(), name)
			}
		}
	})
}

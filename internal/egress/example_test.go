package egress_test

import (
	"fmt"
	"net/netip"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/internal/egress"
)

func ExampleRules_Compile() {
	rules := egress.Rules{Modes: []string{"none", "allowlist"}, MaxRules: 64}
	p, err := rules.Compile(driver.NetworkPolicy{
		Egress: "allowlist",
		Allow:  []string{"pypi.org", "*.github.com", "192.0.2.0/24"},
		Deny:   []string{"gist.github.com"},
	}, "network.")
	if err != nil {
		panic(err)
	}
	fmt.Println(p.AllowsName("pypi.org"), p.AllowsName("api.github.com"), p.AllowsName("gist.github.com"))
	fmt.Println(p.AllowsConn("pypi.org", netip.MustParseAddr("151.101.0.223")))
	fmt.Println(p.AllowsConn("pypi.org", netip.MustParseAddr("169.254.169.254"))) // metadata: never
	fmt.Println(p.AllowsAddr(netip.MustParseAddr("192.0.2.7")))

	_, err = rules.Compile(driver.NetworkPolicy{Egress: "allowlist", Allow: []string{"http://pypi.org"}}, "network.")
	fmt.Println(err)
	// Output:
	// true true false
	// true
	// false
	// true
	// network.allow[0]: "http://pypi.org" is not a domain name, *.wildcard, IP address or CIDR prefix: invalid argument
}

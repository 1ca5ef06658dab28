package egress

// The policy engine: parsing entries, compiling a tenant's policy against
// an operator's Rules, and every allow/deny decision the gateway makes.

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
)

// entry is one parsed allow, deny or permit entry: exactly one of name,
// wild (the suffix under a "*." wildcard) and prefix is set.
type entry struct {
	name   string
	wild   string
	prefix netip.Prefix
}

// errEntry is the reason an entry does not parse; callers add the field.
var errEntry = errors.New("not a domain name, *.wildcard, IP address or CIDR prefix")

// parseEntry parses one entry. Names are lower-cased and lose a trailing
// dot; addresses become single-address prefixes; prefixes are masked and
// IPv4-mapped IPv6 forms become IPv4.
func parseEntry(s string) (entry, error) {
	if strings.ContainsAny(s, ":/") || isNumeric(s) {
		return parseAddrEntry(s)
	}
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		n, ok := normName(rest)
		if !ok {
			return entry{}, errEntry
		}
		return entry{wild: n}, nil
	}
	n, ok := normName(s)
	if !ok {
		return entry{}, errEntry
	}
	return entry{name: n}, nil
}

// parseAddrEntry parses an IP address or a CIDR prefix.
func parseAddrEntry(s string) (entry, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return entry{}, errEntry
		}
		return entry{prefix: unmapPrefix(p.Masked())}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return entry{}, errEntry
	}
	a = a.Unmap()
	return entry{prefix: netip.PrefixFrom(a, a.BitLen())}, nil
}

// unmapPrefix turns a prefix of IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d/96 and longer) into the IPv4 prefix it covers.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// isNumeric reports whether the last label of s is all digits: such a
// string is a (malformed) IPv4 address, never a name (no top-level domain
// is numeric).
func isNumeric(s string) bool {
	s = strings.TrimSuffix(s, ".")
	last := s[strings.LastIndexByte(s, '.')+1:]
	if last == "" {
		return false
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

// normName lower-cases a domain name and drops one trailing dot. It
// reports false unless the name is LDH labels of 1 to 63 characters,
// at most 253 in all, with a non-numeric last label.
func normName(s string) (string, bool) {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 || isNumeric(s) {
		return "", false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return "", false
			}
		}
	}
	return strings.ToLower(s), true
}

// within reports whether e falls inside the permit entry p: a name equal
// to p's name or under p's wildcard, a wildcard under p's wildcard (or
// equal to it), a prefix inside p's prefix.
func (e entry) within(p entry) bool {
	switch {
	case e.name != "":
		return e.name == p.name || p.wild != "" && strings.HasSuffix(e.name, "."+p.wild)
	case e.wild != "":
		return p.wild != "" && (e.wild == p.wild || strings.HasSuffix(e.wild, "."+p.wild))
	default:
		return p.prefix.IsValid() && p.prefix.Bits() <= e.prefix.Bits() &&
			p.prefix.Contains(e.prefix.Addr())
	}
}

// validMode reports whether m is a mode (empty meaning none).
func validMode(m string) bool {
	return m == "" || m == api.EgressNone || m == api.EgressAllowlist || m == api.EgressOpen
}

// Validate checks a policy's syntax: a known mode and entries that are
// domain names, "*." wildcards, IP addresses or CIDR prefixes. Errors
// wrap driver.ErrInvalidArgument and name the field with prefix ("egress",
// prefix+"allow[2]").
func Validate(p driver.NetworkPolicy, prefix string) error {
	_, _, err := parsePolicy(p, prefix)
	return err
}

// parsePolicy validates p and returns its parsed allow and deny entries.
func parsePolicy(p driver.NetworkPolicy, prefix string) (allow, deny []entry, err error) {
	if !validMode(p.Egress) {
		return nil, nil, invalid("%segress: %q is not one of %s, %s and %s", prefix, p.Egress, api.EgressNone, api.EgressAllowlist, api.EgressOpen)
	}
	if allow, err = parseList(p.Allow, prefix+"allow"); err != nil {
		return nil, nil, err
	}
	if deny, err = parseList(p.Deny, prefix+"deny"); err != nil {
		return nil, nil, err
	}
	return allow, deny, nil
}

// parseList parses the entries of the list named field.
func parseList(list []string, field string) ([]entry, error) {
	out := make([]entry, 0, len(list))
	for i, s := range list {
		e, err := parseEntry(s)
		if err != nil {
			return nil, invalid("%s[%d]: %q is %v", field, i, s, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// invalid returns an error wrapping driver.ErrInvalidArgument.
func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, driver.ErrInvalidArgument)...)
}

// Check validates the operator's rules themselves: known modes and
// Permit entries that parse. Compile refuses every policy under rules
// that fail it. Its errors do not wrap driver.ErrInvalidArgument: they
// are the operator's to fix, not the tenant's.
func (r Rules) Check() error {
	for _, m := range r.Modes {
		if m == "" || !validMode(m) {
			return fmt.Errorf("egress rules: mode %q is not one of %s, %s and %s", m, api.EgressNone, api.EgressAllowlist, api.EgressOpen)
		}
	}
	if r.MaxRules < 0 {
		return fmt.Errorf("egress rules: negative MaxRules %d", r.MaxRules)
	}
	for i, s := range r.Permit {
		if _, err := parseEntry(s); err != nil {
			return fmt.Errorf("egress rules: Permit[%d]: %q is %v", i, s, err)
		}
	}
	for i, a := range r.HostAddrs {
		if !a.IsValid() {
			return fmt.Errorf("egress rules: HostAddrs[%d] is the zero address", i)
		}
	}
	return nil
}

// Compile validates p against the rules. Errors wrap
// driver.ErrInvalidArgument and name the field with prefix.
func (r Rules) Compile(p driver.NetworkPolicy, prefix string) (*Policy, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	allow, deny, err := parsePolicy(p, prefix)
	if err != nil {
		return nil, err
	}
	mode := cmpOr(p.Egress, api.EgressNone)
	if len(r.Modes) > 0 && !slices.Contains(r.Modes, mode) {
		return nil, invalid("%segress: mode %q is not permitted here (permitted: %s)", prefix, mode, strings.Join(r.Modes, ", "))
	}
	if n := len(allow) + len(deny); r.MaxRules > 0 && n > r.MaxRules {
		field := "allow"
		if len(allow) <= r.MaxRules {
			field = "deny"
		}
		return nil, invalid("%s%s: %d entries in allow and deny together, more than the %d permitted", prefix, field, n, r.MaxRules)
	}
	if err := r.checkPermit(mode, allow, p.Allow, prefix); err != nil {
		return nil, err
	}
	return newPolicy(p, mode, allow, deny, r), nil
}

// checkPermit applies Rules.Permit: mode open is refused and every allow
// entry must fall within a permit entry (in every mode: allow entries
// are kept in modes none and open too).
func (r Rules) checkPermit(mode string, allow []entry, raw []string, prefix string) error {
	if len(r.Permit) == 0 {
		return nil
	}
	if mode == api.EgressOpen {
		return invalid("%segress: mode %q is not permitted here: the operator bounds what sandboxes may reach (use %s)", prefix, mode, api.EgressAllowlist)
	}
	permit := make([]entry, len(r.Permit))
	for i, s := range r.Permit {
		permit[i], _ = parseEntry(s) // Check parsed them.
	}
	for i, e := range allow {
		if !slices.ContainsFunc(permit, e.within) {
			return invalid("%sallow[%d]: %q is outside what the operator permits (%s)", prefix, i, raw[i], strings.Join(r.Permit, ", "))
		}
	}
	return nil
}

// cmpOr returns s, or def when s is empty.
func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Policy is a validated policy compiled against an operator's Rules.
// It is immutable and safe for concurrent use.
type Policy struct {
	spec driver.NetworkPolicy
	mode string
	// allow and deny hold the entries by kind.
	allow, deny ruleSet
	// open are Rules.Open, unmapped.
	open []netip.Prefix
	// host are Rules.HostAddrs, unmapped.
	host []netip.Addr
}

// ruleSet is a list of entries indexed for matching.
type ruleSet struct {
	names    map[string]struct{}
	wilds    map[string]struct{}
	prefixes []netip.Prefix
}

// newRuleSet indexes entries.
func newRuleSet(es []entry) ruleSet {
	s := ruleSet{names: map[string]struct{}{}, wilds: map[string]struct{}{}}
	for _, e := range es {
		switch {
		case e.name != "":
			s.names[e.name] = struct{}{}
		case e.wild != "":
			s.wilds[e.wild] = struct{}{}
		default:
			s.prefixes = append(s.prefixes, e.prefix)
		}
	}
	return s
}

// matchName reports whether a normalised name is one of the set's names
// or strictly under one of its wildcards.
func (s ruleSet) matchName(name string) bool {
	if _, ok := s.names[name]; ok {
		return true
	}
	for i := strings.IndexByte(name, '.'); i >= 0; {
		rest := name[i+1:]
		if _, ok := s.wilds[rest]; ok {
			return true
		}
		j := strings.IndexByte(rest, '.')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return false
}

// matchAddr reports whether any form of a is in one of the set's prefixes.
func (s ruleSet) matchAddr(forms []netip.Addr) bool {
	for _, p := range s.prefixes {
		for _, a := range forms {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}

// newPolicy builds a Policy from parsed entries.
func newPolicy(p driver.NetworkPolicy, mode string, allow, deny []entry, r Rules) *Policy {
	pol := &Policy{
		spec: driver.NetworkPolicy{Egress: mode, Allow: slices.Clone(p.Allow), Deny: slices.Clone(p.Deny)},
		mode: mode,
		// The allow entries count only in mode allowlist.
		allow: newRuleSet(nil),
		deny:  newRuleSet(deny),
	}
	if mode == api.EgressAllowlist {
		pol.allow = newRuleSet(allow)
	}
	for _, o := range r.Open {
		pol.open = append(pol.open, unmapPrefix(o.Masked()))
	}
	for _, a := range r.HostAddrs {
		pol.host = append(pol.host, a.Unmap().WithZone(""))
	}
	return pol
}

// Spec returns the policy as the tenant set it.
func (p *Policy) Spec() driver.NetworkPolicy {
	return driver.NetworkPolicy{Egress: p.spec.Egress, Allow: slices.Clone(p.spec.Allow), Deny: slices.Clone(p.spec.Deny)}
}

// Mode returns the policy's mode (api.Egress*).
func (p *Policy) Mode() string { return p.mode }

// NormName returns a domain name as policies compare it (lower case,
// without a trailing dot) and whether it is a valid name at all.
func NormName(name string) (string, bool) { return normName(name) }

// AllowsName reports whether the name rules allow connections to name:
// never to "localhost" and names under it (RFC 6761), nor in mode none; in mode open unless a deny entry matches it; in
// mode allowlist when an allow entry matches it and no deny entry does.
// The addresses name resolves to must still pass AllowsConn.
func (p *Policy) AllowsName(name string) bool {
	n, ok := normName(name)
	if !ok || isLocalhost(n) {
		return false
	}
	switch p.mode {
	case api.EgressOpen:
		return !p.deny.matchName(n)
	case api.EgressAllowlist:
		return p.allow.matchName(n) && !p.deny.matchName(n)
	}
	return false
}

// Resolvable reports whether a connection to name could be allowed at
// all, and so whether the gateway may resolve it: the name rules allow
// it, or (mode allowlist) address rules might allow what it resolves to
// and no deny entry matches the name. The gateway never resolves names
// that fail it, so a denied name cannot carry data out through lookups.
func (p *Policy) Resolvable(name string) bool {
	if p.AllowsName(name) {
		return true
	}
	n, ok := normName(name)
	return ok && !isLocalhost(n) && p.mode == api.EgressAllowlist && len(p.allow.prefixes) > 0 && !p.deny.matchName(n)
}

// AllowsAddr reports whether the address rules allow connections to ip
// by address: never in mode none, nor to a forbidden address outside
// Rules.Open, nor to an address a deny prefix covers; then in mode open
// always, in mode allowlist when an allow prefix covers it.
func (p *Policy) AllowsAddr(ip netip.Addr) bool {
	forms, ok := p.reachable(ip)
	if !ok {
		return false
	}
	return p.mode == api.EgressOpen || p.allow.matchAddr(forms)
}

// reachable returns ip's forms (see addrForms) and whether the policy
// lets anything reach it: a mode other than none, no forbidden form
// outside Rules.Open, no form that a deny prefix covers.
func (p *Policy) reachable(ip netip.Addr) ([]netip.Addr, bool) {
	if p.mode == api.EgressNone || !ip.IsValid() {
		return nil, false
	}
	forms := addrForms(ip)
	for _, a := range forms {
		if p.forbidden(a) && !slices.ContainsFunc(p.open, func(o netip.Prefix) bool { return o.Contains(a) }) {
			return nil, false
		}
	}
	if p.deny.matchAddr(forms) {
		return nil, false
	}
	return forms, true
}

// forbidden reports whether a (one form of an address) is in a range
// never reachable without Rules.Open: see Forbidden and Rules.HostAddrs.
func (p *Policy) forbidden(a netip.Addr) bool {
	return forbiddenForm(a) || slices.Contains(p.host, a)
}

// AllowsConn is the decision for a connection to ip, which name resolved
// to (name empty: a connection by address): allowed when the name rules
// allow name and ip is reachable (not forbidden, not denied), or when the
// address rules allow ip and no deny entry matches name.
func (p *Policy) AllowsConn(name string, ip netip.Addr) bool {
	if name == "" {
		return p.AllowsAddr(ip)
	}
	n, ok := normName(name)
	if !ok {
		return false
	}
	if _, ok := p.reachable(ip); !ok {
		return false
	}
	return p.AllowsName(n) || !p.deny.matchName(n) && p.AllowsAddr(ip)
}

// isLocalhost reports whether a normalised name is localhost or under it
// (RFC 6761): resolvers answer loopback for those without asking DNS.
func isLocalhost(n string) bool {
	return n == "localhost" || strings.HasSuffix(n, ".localhost")
}

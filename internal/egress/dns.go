package egress

// The gateway's DNS resolver: it answers A and AAAA queries for the names
// the policy allows with the addresses the policy allows for them.

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

const (
	// dnsTimeout bounds an upstream lookup.
	dnsTimeout = 5 * time.Second
	// dnsTTL is the TTL of the gateway's answers: short, so that clients
	// ask again and see a policy change soon.
	dnsTTL = 30
	// maxAnswers caps the records of an answer, which keeps it under 512
	// bytes for the longest name: no truncation, no EDNS needed.
	maxAnswers = 8
	// maxDNSMessage is the largest query the gateway reads.
	maxDNSMessage = 4096
)

// ServeDNS answers DNS queries arriving on pc until pc or the gateway is
// closed; it returns nil then. Each query is handled in a goroutine of
// its own, at most 64 at once; answers go out on pc.
func (g *Gateway) ServeDNS(pc net.PacketConn) error {
	if !g.addCloser(pc) {
		return nil
	}
	defer g.removeCloser(pc)
	buf := make([]byte, maxDNSMessage)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if g.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		select {
		case g.dnsSlots <- struct{}{}:
		case <-g.ctx.Done():
			return nil
		}
		q := append([]byte(nil), buf[:n]...)
		st := g.state.Load()
		if !g.spawn(func() {
			defer func() { <-g.dnsSlots }()
			if resp := g.answer(g.ctx, st, q); resp != nil {
				pc.WriteTo(resp, from)
			}
		}) {
			return nil
		}
	}
}

// answer returns the response to the DNS query q under st's policy, or
// nil when q deserves none (not a query, or too broken to answer).
func (g *Gateway) answer(ctx context.Context, st *state, q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil
	}
	questions, err := p.AllQuestions()
	if err != nil {
		return reply(h, nil, dnsmessage.RCodeFormatError, nil)
	}
	if h.OpCode != 0 {
		return reply(h, questions, dnsmessage.RCodeNotImplemented, nil)
	}
	if len(questions) != 1 {
		return reply(h, questions, dnsmessage.RCodeFormatError, nil)
	}
	qn := questions[0]
	name := qn.Name.String()
	if !st.p.AllowsName(name) {
		g.log.Debug("egress: dns refused", "name", name)
		return reply(h, questions, dnsmessage.RCodeNameError, nil)
	}
	if qn.Class != dnsmessage.ClassINET || qn.Type != dnsmessage.TypeA && qn.Type != dnsmessage.TypeAAAA {
		return reply(h, questions, dnsmessage.RCodeSuccess, nil)
	}
	network := "ip4"
	if qn.Type == dnsmessage.TypeAAAA {
		network = "ip6"
	}
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	ips, err := g.resolver.LookupNetIP(ctx, network, name)
	if err != nil {
		return reply(h, questions, g.lookupFailure(ctx, name, err), nil)
	}
	var ok []netip.Addr
	for _, ip := range ips {
		ip = ip.Unmap()
		if ip.Is4() != (qn.Type == dnsmessage.TypeA) || !st.p.AllowsConn(name, ip) {
			continue
		}
		st.mem.remember(name, ip)
		if ok = append(ok, ip); len(ok) == maxAnswers {
			break
		}
	}
	return reply(h, questions, dnsmessage.RCodeSuccess, ok)
}

// reply builds the response to the query with header h and questions qs
// (echoed), with rcode and one A or AAAA record of the question's name
// per address.
func reply(h dnsmessage.Header, qs []dnsmessage.Question, rcode dnsmessage.RCode, ips []netip.Addr) []byte {
	rh := dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode, RCode: rcode,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true,
	}
	if len(qs) > 1 || h.OpCode != 0 {
		qs = nil // echo a question only when it was answered
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	if b.StartQuestions() != nil {
		return nil
	}
	for _, q := range qs {
		if b.Question(q) != nil {
			return nil
		}
	}
	if b.StartAnswers() != nil {
		return nil
	}
	for _, ip := range ips {
		rrh := dnsmessage.ResourceHeader{Name: qs[0].Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}
		var err error
		if ip.Is4() {
			err = b.AResource(rrh, dnsmessage.AResource{A: ip.As4()})
		} else {
			err = b.AAAAResource(rrh, dnsmessage.AAAAResource{AAAA: ip.As16()})
		}
		if err != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// lookupFailure is the rcode of a failed lookup of name: NXDOMAIN when
// the name does not exist, NOERROR (no data) when it only lacks the
// addresses asked for (Go's resolver does not tell the two apart, so a
// lookup of either family decides), SERVFAIL otherwise.
func (g *Gateway) lookupFailure(ctx context.Context, name string, err error) dnsmessage.RCode {
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		return dnsmessage.RCodeServerFailure
	}
	if ips, err := g.resolver.LookupNetIP(ctx, "ip", name); err == nil && len(ips) > 0 {
		return dnsmessage.RCodeSuccess
	}
	return dnsmessage.RCodeNameError
}

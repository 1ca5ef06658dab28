package networld

import (
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// answer returns the response to the DNS query msg: an A record for a
// name lookup knows, no record for its other types, NXDOMAIN for a name
// it does not know. ok is false for a message not worth an answer (not
// a query, or too broken to name its id).
func answer(msg []byte, lookup func(name string) (netip.Addr, bool)) (resp []byte, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil, false
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, OpCode: h.OpCode,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	q, err := p.Question()
	switch {
	case h.OpCode != 0:
		rh.RCode = dnsmessage.RCodeNotImplemented
		return build(rh, nil, nil)
	case err != nil:
		rh.RCode = dnsmessage.RCodeFormatError
		return build(rh, nil, nil)
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	addr, known := lookup(name)
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
		return build(rh, &q, nil)
	}
	var a *dnsmessage.AResource
	if q.Class == dnsmessage.ClassINET && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL) && addr.Is4() {
		a = &dnsmessage.AResource{A: addr.As4()}
	}
	return build(rh, &q, a)
}

// build encodes a response with question q (nil: none) and answer a (nil:
// none).
func build(h dnsmessage.Header, q *dnsmessage.Question, a *dnsmessage.AResource) ([]byte, bool) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if q != nil {
		if b.StartQuestions() != nil || b.Question(*q) != nil {
			return nil, false
		}
	}
	if a != nil {
		if b.StartAnswers() != nil ||
			b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, *a) != nil {
			return nil, false
		}
	}
	msg, err := b.Finish()
	return msg, err == nil
}

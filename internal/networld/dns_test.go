package networld

import (
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func query(t testing.TB, name string, typ dnsmessage.Type, opcode dnsmessage.OpCode) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true, OpCode: opcode})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestAnswer(t *testing.T) {
	known := netip.MustParseAddr("198.51.100.1")
	lookup := func(name string) (netip.Addr, bool) { return known, name == "known.test" }
	for _, c := range []struct {
		name    string
		typ     dnsmessage.Type
		opcode  dnsmessage.OpCode
		rcode   dnsmessage.RCode
		answers int
	}{
		{"known.test.", dnsmessage.TypeA, 0, dnsmessage.RCodeSuccess, 1},
		{"KNOWN.Test.", dnsmessage.TypeA, 0, dnsmessage.RCodeSuccess, 1},
		{"known.test.", dnsmessage.TypeAAAA, 0, dnsmessage.RCodeSuccess, 0},
		{"known.test.", dnsmessage.TypeMX, 0, dnsmessage.RCodeSuccess, 0},
		{"other.test.", dnsmessage.TypeA, 0, dnsmessage.RCodeNameError, 0},
		{"known.test.", dnsmessage.TypeA, 2, dnsmessage.RCodeNotImplemented, 0},
	} {
		resp, ok := answer(query(t, c.name, c.typ, c.opcode), lookup)
		if !ok {
			t.Errorf("%s %v: no answer", c.name, c.typ)
			continue
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			t.Fatal(err)
		}
		if m.ID != 7 || !m.Response || m.RCode != c.rcode || len(m.Answers) != c.answers {
			t.Errorf("%s %v: %+v", c.name, c.typ, m)
		}
		if c.answers == 1 && m.Answers[0].Body.(*dnsmessage.AResource).A != known.As4() {
			t.Errorf("%s: answer %v", c.name, m.Answers[0].Body)
		}
	}
	if _, ok := answer([]byte{1, 2, 3}, lookup); ok {
		t.Error("answered garbage")
	}
	nb := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 9})
	noQ, _ := nb.Finish()
	if resp, ok := answer(noQ, lookup); !ok || resp[3]&0xf != byte(dnsmessage.RCodeFormatError) {
		t.Errorf("no question: %v %v", resp, ok)
	}
}

// FuzzAnswer: any packet (the world's DNS server takes them from
// whatever runs in the test) gets no answer or a well-formed one.
func FuzzAnswer(f *testing.F) {
	f.Add(query(f, "known.test.", dnsmessage.TypeA, 0))
	f.Add(query(f, "x.", dnsmessage.TypeAAAA, 0))
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	lookup := func(name string) (netip.Addr, bool) { return netip.MustParseAddr("198.51.100.1"), len(name)%2 == 0 }
	f.Fuzz(func(t *testing.T, msg []byte) {
		resp, ok := answer(msg, lookup)
		if !ok {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		if !m.Response {
			t.Fatal("answer is not a response")
		}
	})
}

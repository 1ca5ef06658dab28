package sdk

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

func TestDecodeModel(t *testing.T) {
	t.Parallel()
	exp := time.Date(2026, 12, 2, 1, 17, 27, 0, time.UTC)
	for _, body := range []string{
		`{"podName":"p","expiresAt":"2026-12-02T01:17:27Z"}`,
		`{"podName":"p","expiresAt":"2026-12-02T01:17:27.000000+00:00Z","extra":{"x":[1]}}`,
		`{"podName":"p","expiresAt":"2026-12-02T01:17:27"}`,
		`{"podName":"p","expiresAt":1796174247}`,
		`{"podName":"p","expiresAt":"1796174247.0"}`,
		`{"PodName":"p","ExpiresAt":1796174247}`,
	} {
		var g noxapi.CreateSandboxResult
		unparsed, err := decodeModel([]byte(body), &g)
		if err != nil || unparsed != nil || g.PodName != "p" || !g.ExpiresAt.Equal(exp) {
			t.Errorf("%s: %+v, unparsed %v, err %v", body, g, unparsed, err)
		}
	}

	var g noxapi.ExecResult
	_, err := decodeModel([]byte(`{"exitCode":0.0,"stdout":"x","stderr":"","durationMs":1.5,"timedOut":false,"new":1}`), &g)
	if err != nil || g.ExitCode != 0 || g.DurationMs != 2 || g.Stdout != "x" || g.TimedOut == nil {
		t.Errorf("fractions: %+v %v", g, err)
	}
	_, err = decodeModel([]byte(`{"exitCode":"3","stdout":"","stderr":"","durationMs":"7"}`), &g)
	if err != nil || g.ExitCode != 3 || g.DurationMs != 7 || g.TimedOut != nil {
		t.Errorf("numeric strings: %+v %v", g, err)
	}
	for _, bad := range []string{`{"exitCode":2147483648.5}`, `{"exitCode":true}`, `{"stdout":5}`, `[`, ``} {
		if _, err := decodeModel([]byte(bad), &g); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}

	var list noxapi.SandboxList
	unparsed, err := decodeModel([]byte(`{"items":[{"sessionId":"a","podName":"p","state":"ready","createdAt":"soon",
		"lastActiveAt":1796174247,"expiresAt":null,"ttlSeconds":60.0}]}`), &list)
	if err != nil || len(list.Items) != 1 || list.Items[0].TTLSeconds != 60 || !list.Items[0].LastActiveAt.Equal(exp) {
		t.Fatalf("list: %+v %v", list, err)
	}
	if fmt.Sprint(unparsed) != `map[items.0.createdAt:"soon"]` {
		t.Errorf("unparsed %v", unparsed)
	}
	st := fromGenStatus(&list.Items[0], unparsedUnder(unparsed, "items.0."))
	if fmt.Sprint(st.Unparsed) != `map[createdAt:"soon"]` || !st.CreatedAt.IsZero() || !st.ExpiresAt.IsZero() {
		t.Errorf("status %+v", st)
	}
}

func TestTimedOutDerived(t *testing.T) {
	t.Parallel()
	r := &noxapi.ExecResult{ExitCode: 124}
	if !fromGenExec(r, true).TimedOut || fromGenExec(r, false).TimedOut {
		t.Error("TimedOut not derived from exit code 124 as asked")
	}
	f := false
	r.TimedOut = &f
	if fromGenExec(r, true).TimedOut {
		t.Error("a reported timedOut false was overridden")
	}
	c, err := New("http://nox.invalid")
	assertNoErr(t, err)
	assertEq(t, "no info: derive", c.deriveTimedOut(), true)
	c.setInfo(&Info{Extensions: []string{ExtExecFlags}})
	assertEq(t, "exec.flags: reported", c.deriveTimedOut(), false)
	c.setInfo(&Info{PlainV1: true})
	assertEq(t, "plain v1: derive", c.deriveTimedOut(), true)
}

// FuzzDecodeModel checks that decodeModel never panics on any body, and
// that what it decodes encodes to JSON the contract's form decodes again.
func FuzzDecodeModel(f *testing.F) {
	for _, s := range []string{`{"exitCode":0.0,"stdout":"","stderr":"","durationMs":1.5}`,
		`{"items":[{"createdAt":1796174247,"ttlSeconds":"60"}]}`, `{"expiresAt":"2026-12-02T01:17:27+00:00Z"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, v := range []any{&noxapi.ExecResult{}, &noxapi.SandboxList{}, &noxapi.CreateSandboxResult{}} {
			if _, err := decodeModel([]byte(body), v); err != nil {
				continue
			}
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%s: decoded %+v, which does not encode: %v", body, v, err)
			}
			if err := json.Unmarshal(out, v); err != nil {
				t.Errorf("%s: encoded as %s, which does not decode: %v", body, out, err)
			}
		}
	})
}

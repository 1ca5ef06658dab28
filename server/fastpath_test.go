package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// validators are the fast path and the kin-openapi validator, built once.
var validators = sync.OnceValues(func() (v struct {
	fast fastRoutes
	slow func(http.Handler) http.Handler
}, err error) {
	v.fast, v.slow, err = newValidators(context.Background())
	return v, err
})

// judge returns whether the fast path accepts a request and whether the
// validator does, and the bodies that the next handler received after
// each.
func judge(t testing.TB, method, path, contentType, body string) (fast, slow bool, fastBody, slowBody string) {
	t.Helper()
	v, err := validators()
	if err != nil {
		t.Fatal(err)
	}
	newReq := func() *http.Request {
		r := httptest.NewRequest(method, "http://127.0.0.1"+path, strings.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		return r
	}
	r := newReq()
	if op, params := v.fast.match(r); op != nil && op.accepts(r, params) {
		fast = true
		data, _ := io.ReadAll(r.Body)
		fastBody = string(data)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slow = true
		data, _ := io.ReadAll(r.Body)
		slowBody = string(data)
	})
	v.slow(next).ServeHTTP(httptest.NewRecorder(), newReq())
	return fast, slow, fastBody, slowBody
}

// fastCases are requests of the hot operations: the valid ones must take
// the fast path, and whatever the fast path takes the validator must
// accept.
var fastCases = []struct {
	method, path, body string
	fast               bool // the fast path must take it
}{
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo","hi"],"workdir":"/workspace","timeoutSeconds":5}`, true},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo"],"env":{"A":"b"},"stdin":"x","stdinEncoding":"base64","extra":[1,{}]}`, true},
	{"POST", "/v1/sandboxes/s1/exec", ` {"cmd":["echo"]} ` + "\n", true},
	{"POST", "/v1/sandboxes/s1/exec/stream", `{"cmd":["echo","hi"],"timeoutSeconds":2147483647}`, true},
	{"PUT", "/v1/sandboxes/s1", `{"ttlSeconds":600}`, true},
	{"PUT", "/v1/sandboxes/s1", `{}`, true},
	{"PUT", "/v1/sandboxes/s1", `{"ttlSeconds":60,"image":"python","cpuLimit":"500m","memoryLimit":"1Gi","ephemeralStorageLimit":"2Gi"}`, true},
	{"POST", "/v1/sandboxes/s1/touch", ``, true},
	{"POST", "/v1/sandboxes/s1/processes", `{"cmd":["sleep","1"]}`, true},
	{"DELETE", "/v1/sandboxes/s1", ``, true},
	{"GET", "/v1/sandboxes/s1", ``, true},

	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":[]}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":"echo"}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"CMD":["echo"]}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo",1]}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo"],"workdir":null}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo"],"workdir":""}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo"],"timeoutSeconds":0}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo"],"timeoutSeconds":1.0}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo"],"timeoutSeconds":1e1}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo"],"timeoutSeconds":2147483648}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo"],"timeoutSeconds":"5"}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo"],"stdinEncoding":"utf8"}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo"],"env":{"A":1}}`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo"]} trailing`, false},
	{"POST", "/v1/sandboxes/s1/exec", `{"cmd":["echo"]`, false},
	{"POST", "/v1/sandboxes/s1/exec", ``, false},
	{"POST", "/v1/sandboxes/s1/exec", `null`, false},
	{"POST", "/v1/sandboxes/s1/exec", `[]`, false},
	{"POST", "/v1/sandboxes/-bad/exec", `{"cmd":["echo"]}`, false},
	{"POST", "/v1/sandboxes/" + strings.Repeat("a", 129) + "/exec", `{"cmd":["echo"]}`, false},
	{"POST", "/v1/sandboxes/s%2F1/exec", `{"cmd":["echo"]}`, false},
	{"POST", "/v1/sandboxes/s1/exec/", `{"cmd":["echo"]}`, false},
	{"GET", "/v1/sandboxes/s1/exec", ``, false},
	{"PUT", "/v1/sandboxes/s1", `{"ttlSeconds":0}`, false},
	{"PUT", "/v1/sandboxes/s1", `{"cpuLimit":"lots"}`, false},
	{"PUT", "/v1/sandboxes/s1", `{"image":""}`, false},
	{"PUT", "/v1/sandboxes/s1", `{"network":"none"}`, false},
	{"POST", "/v1/sandboxes/s1/processes", `{"cmd":["x"],"pty":"yes"}`, false},
}

func TestFastPathAgreesWithValidator(t *testing.T) {
	for _, c := range fastCases {
		for _, ct := range []string{"application/json", "text/plain", ""} {
			fast, slow, fastBody, slowBody := judge(t, c.method, c.path, ct, c.body)
			if fast && !slow {
				t.Errorf("%s %s (%s) %s: the fast path accepts what the validator refuses", c.method, c.path, ct, c.body)
			}
			if fast && fastBody != slowBody {
				t.Errorf("%s %s %s: the handler reads %q after the fast path, %q after the validator", c.method, c.path, c.body, fastBody, slowBody)
			}
			if ct == "application/json" && fast != c.fast {
				t.Errorf("%s %s %s: fast path %v, want %v (validator: %v)", c.method, c.path, c.body, fast, c.fast, slow)
			}
		}
	}
}

// FuzzFastPath checks that the fast path never accepts an exec, create or
// startProcess body that the validator refuses.
func FuzzFastPath(f *testing.F) {
	for _, c := range fastCases {
		if c.body != "" {
			f.Add(c.body)
		}
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, target := range [][2]string{{"POST", "/v1/sandboxes/s1/exec"}, {"PUT", "/v1/sandboxes/s1"}, {"POST", "/v1/sandboxes/s1/processes"}} {
			fast, slow, _, _ := judge(t, target[0], target[1], "application/json", body)
			if fast && !slow {
				t.Fatalf("%s %s %q: the fast path accepts what the validator refuses", target[0], target[1], body)
			}
		}
	})
}

func TestSaneRequestID(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9._:/+=-]{1,128}$`)
	for _, id := range []string{"", "a", "abc-DEF_1.2:3/4+5=6", strings.Repeat("x", 128), strings.Repeat("x", 129), "a b", "é", "a\n", "a%20", "<x>"} {
		if got, want := saneRequestID(id), re.MatchString(id); got != want {
			t.Errorf("saneRequestID(%q) = %v, want %v", id, got, want)
		}
	}
}

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// requestRecorder is a backend without extensions that records the JSON
// body of every create and exec request and answers with canned
// successes; an exec answers with its workdir (or "/workspace") as
// stdout, as the shell's cd check expects.
type requestRecorder struct {
	mu     sync.Mutex
	bodies []string
}

func (rr *requestRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":"not found"}`)
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"bad JSON"}`)
		return
	}
	canon, _ := json.Marshal(body) // keys sorted
	rr.mu.Lock()
	rr.bodies = append(rr.bodies, string(canon))
	rr.mu.Unlock()
	if r.Method == http.MethodPut {
		io.WriteString(w, `{"podName":"p","expiresAt":"2030-01-02T03:04:05Z"}`)
		return
	}
	wd, _ := body["workdir"].(string)
	if wd == "" {
		wd = "/workspace"
	}
	out, _ := json.Marshal(wd + "\n")
	io.WriteString(w, `{"exitCode":0,"stdout":`+string(out)+`,"stderr":"","durationMs":1}`)
}

// take returns the bodies recorded since the last call.
func (rr *requestRecorder) take() []string {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	out := rr.bodies
	rr.bodies = nil
	return out
}

// TestFlagsSentOnlyWhenSet checks that the CLI leaves an unset --ttl,
// --workdir or --timeout-seconds out of its requests, so the backend's
// defaults apply, and sends them when given. Not parallel: see nox.
func TestFlagsSentOnlyWhenSet(t *testing.T) {
	rec := &requestRecorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		stdin string
		args  string
		want  []string // the bodies sent, keys sorted
	}{
		{"", "create s", []string{`{}`}},
		{"", "create s --ttl 0", []string{`{}`}},
		{"", "create s --ttl 120 --image img", []string{`{"image":"img","ttlSeconds":120}`}},
		// Time flags take seconds or a duration, under every name.
		{"", "create s --ttl 5m", []string{`{"ttlSeconds":300}`}},
		{"", "create s --ttl=1h30m", []string{`{"ttlSeconds":5400}`}},
		{"", "exec s --cmd-timeout 30 -- ls", []string{`{"cmd":["ls"],"timeoutSeconds":30}`}},
		{"", "exec s --cmd-timeout 2m -- ls", []string{`{"cmd":["ls"],"timeoutSeconds":120}`}},
		{"", "exec s --timeout 5 -- ls", []string{`{"cmd":["ls"],"timeoutSeconds":5}`}},
		{"", "exec s --timeout-seconds 1m -- ls", []string{`{"cmd":["ls"],"timeoutSeconds":60}`}},
		{"", "sh s --timeout 9s 'true'", []string{`{"cmd":["sh","-c","true"],"timeoutSeconds":9}`}},
		// Before the command, --timeout is still the request timeout.
		{"", "--timeout 90 exec s -- ls", []string{`{"cmd":["ls"]}`}},
		{"", "--request-timeout 1m exec s -- ls", []string{`{"cmd":["ls"]}`}},
		{"", "exec s -- ls", []string{`{"cmd":["ls"]}`}},
		{"", "--json exec s -- ls", []string{`{"cmd":["ls"]}`}},
		{"", "exec s --workdir /w --timeout-seconds 7 -e K=v -- ls",
			[]string{`{"cmd":["ls"],"env":{"K":"v"},"timeoutSeconds":7,"workdir":"/w"}`}},
		{"", "sh s 'echo hi'", []string{`{"cmd":["sh","-c","echo hi"]}`}},
		{"", "sh s --shell bash -w /w --timeout-seconds 3 'echo hi'",
			[]string{`{"cmd":["bash","-c","echo hi"],"timeoutSeconds":3,"workdir":"/w"}`}},
		// The shell starts in the backend's default directory, then sends
		// the directory it tracks.
		{"echo hi\n", "shell s", []string{
			`{"cmd":["sh","-c","cd -- \"$1\" \u0026\u0026 pwd","sh","."]}`,
			`{"cmd":["sh","-c","echo hi"],"workdir":"/workspace"}`}},
		{"echo hi\n", "shell s -w /w --timeout-seconds 4", []string{
			`{"cmd":["sh","-c","cd -- \"$1\" \u0026\u0026 pwd","sh","/w"],"timeoutSeconds":4,"workdir":"/w"}`,
			`{"cmd":["sh","-c","echo hi"],"timeoutSeconds":4,"workdir":"/w"}`}},
	} {
		args := append([]string{"--base-url", srv.URL, "--no-color"}, splitArgs(tc.args)...)
		if r := nox(t, tc.stdin, args...); r.code != exitOK {
			t.Errorf("nox %s: exit %d: %s", tc.args, r.code, r.stderr)
		}
		if got := rec.take(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("nox %s sent\n%s\nwant\n%s", tc.args, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

// TestCompletionNeverRuns checks that asking for completions sends no
// request, also after "--" where urfave/cli would run the command line as
// typed (`nox exec s1 -- true --generate-bash-completion` used to exec
// ["--","true"]). Not parallel: see nox.
func TestCompletionNeverRuns(t *testing.T) {
	rec := &requestRecorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	for _, args := range []string{
		"exec s1 -- true --generate-bash-completion",
		"exec s1 true --generate-bash-completion",
		"exec -- s1 true --generate-bash-completion",
		"sh s1 -- 'touch x' --generate-bash-completion",
		"create s1 --generate-bash-completion",
		"create -- s1 --generate-bash-completion",
		"-- --generate-bash-completion",
	} {
		r := nox(t, "", append([]string{"--base-url", srv.URL}, splitArgs(args)...)...)
		if r.code != exitOK || r.stderr != "" {
			t.Errorf("nox %s: exit %d, stderr %q; want 0 and nothing", args, r.code, r.stderr)
		}
		if strings.Contains(r.stdout, "help") {
			t.Errorf("nox %s offers %q; no command has a help subcommand", args, r.stdout)
		}
		if got := rec.take(); len(got) > 0 {
			t.Errorf("nox %s sent %q; completion must never run a command", args, got)
		}
	}
}

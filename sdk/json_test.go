package sdk

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// jsonValues are values with every field set, and their JSON forms.
func jsonValues() []struct {
	name string
	v    any
	want string
} {
	at := time.Date(2030, 1, 2, 3, 4, 5, 500_000_000, time.UTC)
	return []struct {
		name string
		v    any
		want string
	}{
		{"info", Info{APIVersion: "v1", Backend: BackendIdentity{Name: "b", Version: "1"},
			Extensions: []string{ExtInfo}, Isolation: &Isolation{Tier: "landlock", Isolated: true, Notes: []string{"n"}},
			Limits: Limits{DefaultTTL: 900 * time.Second, MaxTTL: time.Hour, DefaultTimeout: 30 * time.Second,
				MaxTimeout: time.Minute, MaxOutputBytes: 10, MaxUploadBytes: 20, MaxUploadEntries: 30,
				MaxConcurrentExecs: 4, StreamHeartbeat: 15 * time.Second,
				MaxConcurrentExecsPerSandbox: 2, StallTimeout: 30 * time.Second, MinCPU: "10m", MinMemory: "16Mi",
				HostPidsBudget: 16384, OpenFiles: 65536, HostOpenFilesBudget: 100000,
				MaxListPageSize: 1000, MaxWatchesPerSandbox: 8, MaxWatchDirs: 8192, MaxWatchQueue: 4096,
				MaxProcessesPerSandbox: 16, MaxProcessRecords: 256, ProcessOutputBytes: 1 << 20,
				MaxProcessWait: time.Minute, MaxStdinBytes: 512 << 10,
				EgressModes: []EgressMode{EgressNone, EgressAllowlist}, MaxEgressRules: 64, MaxEgressConnections: 128},
			Images: []string{"default"}},
			`{"apiVersion":"v1","backend":"b","backendVersion":"1","plainV1":false,"extensions":["info"],` +
				`"isolation":{"tier":"landlock","isolated":true,"notes":["n"]},` +
				`"limits":{"defaultTimeoutSeconds":30,"defaultTtlSeconds":900,"egressModes":["none","allowlist"],"hostOpenFilesBudget":100000,"hostPidsBudget":16384,` +
				`"maxConcurrentExecs":4,"maxConcurrentExecsPerSandbox":2,"maxEgressConnections":128,"maxEgressRules":64,"maxListPageSize":1000,"maxOutputBytes":10,` +
				`"maxProcessRecords":256,"maxProcessWaitSeconds":60,"maxProcessesPerSandbox":16,"maxStdinBytes":524288,` +
				`"maxTimeoutSeconds":60,"maxTtlSeconds":3600,"maxUploadBytes":20,"maxUploadEntries":30,` +
				`"maxWatchDirs":8192,"maxWatchQueue":4096,"maxWatchesPerSandbox":8,` +
				`"minCpu":"10m","minMemory":"16Mi","openFiles":65536,"processOutputBytes":1048576,"stallTimeoutSeconds":30,"streamHeartbeatMs":15000},` +
				`"images":["default"]}`},
		{"plain v1 info", Info{APIVersion: "v1", PlainV1: true, Extensions: []string{}},
			`{"apiVersion":"v1","plainV1":true,"extensions":[]}`},
		{"status", SandboxStatus{SessionID: "s", PodName: "p", State: StateReady, Image: "i",
			CreatedAt: at, LastActiveAt: at.Add(time.Second), ExpiresAt: at.Add(time.Minute), TTL: time.Minute,
			Limits:       ResourceLimits{CPU: "1", Memory: "1Gi", EphemeralStorage: "2Gi", PIDs: 64, Unenforced: []string{"cpu"}},
			RunningExecs: 2, Network: &NetworkPolicy{Egress: EgressAllowlist, Allow: []string{"pypi.org"}, Deny: []string{"10.0.0.0/8"}}},
			`{"sessionId":"s","podName":"p","state":"ready","image":"i","createdAt":"2030-01-02T03:04:05.5Z",` +
				`"lastActiveAt":"2030-01-02T03:04:06.5Z","expiresAt":"2030-01-02T03:05:05.5Z","ttlSeconds":60,` +
				`"limits":{"cpu":"1","ephemeralStorage":"2Gi","memory":"1Gi","pids":64,"unenforced":["cpu"]},"runningExecs":2,` +
				`"network":{"egress":"allowlist","allow":["pypi.org"],"deny":["10.0.0.0/8"]}}`},
		{"sparse status", SandboxStatus{SessionID: "s", State: StatePending},
			`{"sessionId":"s","state":"pending","runningExecs":0}`},
		{"exec result", ExecResult{ExitCode: 124, Stdout: "<a>&\u2028", Stderr: "e", Duration: 1500 * time.Millisecond,
			TimedOut: true, StdoutTruncated: true, StderrTruncated: true, OOMKilled: true},
			`{"exitCode":124,"stdout":"<a>&\u2028","stderr":"e","durationMs":1500,"timedOut":true,` +
				`"stdoutTruncated":true,"stderrTruncated":true,"oomKilled":true}`},
	}
}

// encode encodes v as nox --json does: no HTML escaping.
func encode(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	assertNoErr(t, enc.Encode(v))
	return strings.TrimSuffix(b.String(), "\n")
}

func TestJSONForm(t *testing.T) {
	t.Parallel()
	for _, tc := range jsonValues() {
		assertEq(t, tc.name, encode(t, tc.v), tc.want)
		// json.Marshal escapes HTML characters, as it does everywhere.
		b, err := json.Marshal(tc.v)
		assertNoErr(t, err)
		var escaped bytes.Buffer
		json.HTMLEscape(&escaped, []byte(tc.want))
		assertEq(t, tc.name+" (json.Marshal)", string(b), escaped.String())

		// The form decodes to the value again.
		back := reflect.New(reflect.TypeOf(tc.v))
		assertNoErr(t, json.Unmarshal(b, back.Interface()))
		if got := back.Elem().Interface(); !reflect.DeepEqual(got, tc.v) {
			t.Errorf("%s: decoded %+v, want %+v", tc.name, got, tc.v)
		}
	}
}

// TestJSONFormEdges checks what the JSON form leaves out or normalises.
func TestJSONFormEdges(t *testing.T) {
	t.Parallel()
	east := time.FixedZone("east", 2*3600)
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"nil extensions", Info{}, `{"plainV1":false,"extensions":[]}`},
		{"sub-second limits are not advertised", Info{Limits: Limits{DefaultTTL: time.Millisecond}},
			`{"plainV1":false,"extensions":[]}`},
		{"empty egress modes", Info{Limits: Limits{EgressModes: []EgressMode{}}}, `{"plainV1":false,"extensions":[]}`},
		{"times in UTC", SandboxStatus{SessionID: "s", State: StateReady, CreatedAt: time.Date(2030, 1, 1, 2, 0, 0, 0, east)},
			`{"sessionId":"s","state":"ready","createdAt":"2030-01-01T00:00:00Z","runningExecs":0}`},
		{"empty unenforced list", SandboxStatus{SessionID: "s", State: StateReady, Limits: ResourceLimits{Unenforced: []string{}}},
			`{"sessionId":"s","state":"ready","runningExecs":0}`},
		{"pointer", &ExecResult{}, `{"exitCode":0,"stdout":"","stderr":"","durationMs":0,"timedOut":false,` +
			`"stdoutTruncated":false,"stderrTruncated":false,"oomKilled":false}`},
		{"list", []SandboxStatus{{SessionID: "a", State: StateStopped}},
			`[{"sessionId":"a","state":"stopped","runningExecs":0}]`},
	} {
		assertEq(t, tc.name, encode(t, tc.v), tc.want)
	}
	var s SandboxStatus
	if err := json.Unmarshal([]byte(`{"sessionId":"s","expiresAt":"tomorrow"}`), &s); err == nil || !strings.Contains(err.Error(), "expiresAt") {
		t.Errorf("bad time: %v", err)
	}
}

package sandbox

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	MaybeInit()
	os.Exit(m.Run())
}

func TestSmoke(t *testing.T) {
	m, err := New(Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { t.Log("close:", m.Close()) }()
	t.Logf("%+v", m.Report())
	ws := t.TempDir()
	t0 := time.Now()
	s, err := m.Start(context.Background(), Spec{Key: "smoke", Workspace: ws, Limits: Limits{Pids: 64, MemoryBytes: 256 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("start", time.Since(t0), s.notes)
	for _, argv := range [][]string{{"echo", "hi"}, {"sh", "-c", "id; ls /; cat /proc/self/status | grep -i -E 'cap|seccomp|nonew'; cat /proc/self/cgroup; ls -la /workspace /dev; hostname; ip a 2>&1 | head -3; mount | head -30"}, {"nosuch"}, {"false"}} {
		var out, er bytes.Buffer
		t0 := time.Now()
		r, err := s.Exec(context.Background(), ExecSpec{Argv: argv, Env: []string{"PATH=/usr/bin:/bin"}, Stdout: &out, Stderr: &er, Timeout: 5 * time.Second})
		t.Logf("%v %+v %v %v\nstdout: %s\nstderr: %s", argv, r, err, time.Since(t0), out.String(), er.String())
	}
}

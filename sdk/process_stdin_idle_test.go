package sdk

import (
	"io"
	"testing"
	"time"

	"github.com/noxrunner/nox/server"
)

// A stdin writer left idle longer than the server's stall timeout keeps
// working: its request ended while idle and the next write opened
// another, whose bytes followed the first's.
func TestStdinSurvivesIdleLongerThanStall(t *testing.T) {
	if testing.Short() {
		t.Skip("waits past a stall timeout")
	}
	bo := testOptions()
	bo.Server = server.Options{StreamHeartbeat: 200 * time.Millisecond, StallTimeout: stdinIdle + time.Second}
	c, _ := setupWith(t, bo)
	sb := newSandbox(t, c, "idle")
	ctx := t.Context()
	p, err := sb.Start(ctx, []string{"cat"}, StartOptions{Stdin: true})
	assertNoErr(t, err)
	w := p.Stdin(ctx)
	if _, err := io.WriteString(w, "one "); err != nil {
		t.Fatal(err)
	}
	time.Sleep(stdinIdle + 2*time.Second) // past both the stall timeout and the writer's idle end
	if _, err := io.WriteString(w, "two"); err != nil {
		t.Fatalf("write after idle: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	_, err = p.Wait(ctx)
	assertNoErr(t, err)
	if out, _ := outputOf(t, p, 0); out != "one two" {
		t.Fatalf("cat got %q", out)
	}
}

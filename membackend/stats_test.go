package membackend

import (
	"context"
	"testing"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
)

func TestUsageAndStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newTest(t, Config{})
	for _, id := range []string{"a", "b"} {
		if _, err := b.Create(ctx, id, driver.CreateRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	run(t, b, "a", driver.ExecRequest{Argv: []string{"sh", "-c", "head -c 1000 /dev/zero > /workspace/f; head -c 24 /dev/zero > /tmp/g"}}, nil)
	s, err := b.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	want := driver.Usage{CPUSeconds: -1, MemoryBytes: -1, Pids: -1, StorageBytes: 1024}
	if s.Usage == nil || *s.Usage != want {
		t.Fatalf("usage = %+v, want %+v", s.Usage, want)
	}
	page, _, err := b.List(ctx, "", 10)
	if err != nil || len(page) != 2 || page[1].Usage == nil || page[1].Usage.StorageBytes != 0 {
		t.Fatalf("list = %+v, %v", page, err)
	}
	st, err := b.Stats(ctx)
	if err != nil || st.Sandboxes != 2 || st.Usage["a"] != want {
		t.Fatalf("stats = %+v, %v", st, err)
	}

	b = newTest(t, Config{Extensions: []string{api.ExtSandboxesGet}})
	if _, err := b.Create(ctx, "a", driver.CreateRequest{}); err != nil {
		t.Fatal(err)
	}
	if s, _ := b.Get(ctx, "a"); s.Usage != nil {
		t.Errorf("usage without sandboxes.usage: %+v", s.Usage)
	}
	if st, _ := b.Stats(ctx); st.Sandboxes != 1 || st.Usage != nil {
		t.Errorf("stats without sandboxes.usage = %+v", st)
	}
}

package main

import (
	"testing"

	"github.com/noxrunner/nox/sdk"
)

func TestUsageLine(t *testing.T) {
	for _, c := range []struct {
		u    sdk.Usage
		want string
	}{
		{sdk.Usage{CPUSeconds: 1.254, MemoryBytes: 10 << 20, Pids: 3, StorageBytes: 4096}, "cpu 1.25s, memory 10.0 MiB, pids 3, storage 4.0 KiB"},
		{sdk.Usage{CPUSeconds: -1, MemoryBytes: -1, Pids: -1, StorageBytes: 1000}, "cpu -, memory -, pids -, storage 1000 B"},
		{sdk.Usage{CPUSeconds: 0, MemoryBytes: 3 << 40, Pids: 0, StorageBytes: 5 << 50}, "cpu 0.00s, memory 3.0 TiB, pids 0, storage 5120.0 TiB"},
	} {
		if got := usageLine(c.u); got != c.want {
			t.Errorf("usageLine(%+v) = %q, want %q", c.u, got, c.want)
		}
	}
}

package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/noxrunner/nox/sdk"
)

// usageLine is a sandbox's usage on one line: "cpu 1.25s, memory 10.0
// MiB, pids 3, storage 4.0 KiB", with "-" for what the backend does not
// measure.
func usageLine(u sdk.Usage) string {
	parts := []string{"cpu -", "memory -", "pids -", "storage -"}
	if u.CPUSeconds >= 0 {
		parts[0] = "cpu " + strconv.FormatFloat(u.CPUSeconds, 'f', 2, 64) + "s"
	}
	if u.MemoryBytes >= 0 {
		parts[1] = "memory " + humanBytes(u.MemoryBytes)
	}
	if u.Pids >= 0 {
		parts[2] = "pids " + strconv.FormatInt(u.Pids, 10)
	}
	if u.StorageBytes >= 0 {
		parts[3] = "storage " + humanBytes(u.StorageBytes)
	}
	return strings.Join(parts, ", ")
}

// humanBytes is n in bytes, KiB, MiB, GiB or TiB with one decimal.
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= 1024
		if v < 1024 || unit == "TiB" {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
	}
	return "" // unreachable
}

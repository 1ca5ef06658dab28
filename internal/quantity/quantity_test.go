package quantity

import (
	"testing"
)

func TestParseQuantity(t *testing.T) {
	t.Parallel()
	cpu := []struct {
		in   string
		want int64
	}{
		{"1", 1000}, {"500m", 500}, {"0.5", 500}, {"1.5", 1500}, {"+2", 2000}, {".1", 100},
		{"2e3", 2000000}, {"1E-3", 1}, {"0.0001", 1}, {"1k", 1000000}, {"100m", 100}, {"3.", 3000},
	}
	for _, c := range cpu {
		got, err := ParseCPUMilli(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseCPUMilli(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	mem := []struct {
		in   string
		want int64
	}{
		{"1Gi", 1 << 30}, {"512Mi", 512 << 20}, {"1G", 1e9}, {"1.5Ki", 1536}, {"128974848", 128974848},
		{"129e6", 129000000}, {"123Mi", 123 << 20}, {"1m", 1}, {"8Ei", 0},
	}
	for _, c := range mem {
		got, err := ParseBytes(c.in)
		if c.in == "8Ei" {
			if err == nil {
				t.Errorf("ParseBytes(8Ei) = %d, want overflow error", got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "-1", "1x", "Gi", "1Gib", "1.2.3", "e3", "1e", "1e+", "1e99", "1 Gi", "0x10", "1e3Gi", "NaN", "++1", "."} {
		if v, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want error", bad, v)
		}
	}
	for _, c := range []struct {
		n    int64
		want string
	}{{1 << 30, "1Gi"}, {512 << 20, "512Mi"}, {1000, "1000"}, {1536, "1536"}, {0, "0"}} {
		if got := FormatBytes(c.n); got != c.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	if got := FormatCPUMilli(1500); got != "1500m" {
		t.Errorf("FormatCPUMilli(1500) = %q", got)
	}
	if got := FormatCPUMilli(2000); got != "2" {
		t.Errorf("FormatCPUMilli(2000) = %q", got)
	}
}

func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{"1", "500m", "1.5Gi", "2e3", "+.5", "1E-3", "9999999999999999999Ei", "1e30", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		if v.Sign() < 0 {
			t.Fatalf("Parse(%q) = %v < 0", s, v)
		}
		if len(s) > MaxLen {
			t.Fatalf("Parse accepted %d characters", len(s))
		}
		// Whatever parses must round-trip through the byte formatter.
		if n, err := ParseBytes(s); err == nil {
			back, err := ParseBytes(FormatBytes(n))
			if err != nil || back != n {
				t.Fatalf("FormatBytes(%d) = %q parses as %d, %v", n, FormatBytes(n), back, err)
			}
		}
		if m, err := ParseCPUMilli(s); err == nil {
			back, err := ParseCPUMilli(FormatCPUMilli(m))
			if err != nil || back != m {
				t.Fatalf("FormatCPUMilli(%d) = %q parses as %d, %v", m, FormatCPUMilli(m), back, err)
			}
		}
	})
}

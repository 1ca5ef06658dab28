package api_test

import (
	"errors"
	"io/fs"
	"regexp"
	"testing"

	"github.com/noxrunner/nox/api"
)

func TestModeRoundTrip(t *testing.T) {
	doc := load(t)
	pattern := regexp.MustCompile(doc.Components.Schemas["FileInfo"].Value.Properties["mode"].Value.Pattern)
	for _, tc := range []struct {
		in   string
		want fs.FileMode
		out  string
	}{
		{"644", 0o644, "0644"},
		{"0644", 0o644, "0644"},
		{"0", 0, "0000"},
		{"4755", 0o755 | fs.ModeSetuid, "04755"},
		{"02775", 0o775 | fs.ModeSetgid, "02775"},
		{"1777", 0o777 | fs.ModeSticky, "01777"},
		{"7777", 0o777 | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky, "07777"},
	} {
		m, err := api.ParseMode(tc.in)
		if err != nil || m != tc.want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", tc.in, m, err, tc.want)
		}
		if got := api.FormatMode(m); got != tc.out || !pattern.MatchString(got) {
			t.Errorf("FormatMode(%v) = %q; want %q matching the contract's %s", m, got, tc.out, pattern)
		}
	}
	for _, bad := range []string{"", "8", "0x1ff", "10000", "-1", "+644", "rw-r--r--"} {
		if _, err := api.ParseMode(bad); !errors.Is(err, api.ErrBadMode) {
			t.Errorf("ParseMode(%q) = %v; want ErrBadMode", bad, err)
		}
	}
}

// FuzzParseMode: a mode that parses is written back in the contract's
// form and parses to itself again.
func FuzzParseMode(f *testing.F) {
	for _, s := range []string{"644", "0644", "04755", "7777", "", "8", "-1", "+1", "0x1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := api.ParseMode(s)
		if err != nil {
			return
		}
		out := api.FormatMode(m)
		if m2, err := api.ParseMode(out); err != nil || m2 != m {
			t.Fatalf("ParseMode(%q) = %v, written %q, read back %v, %v", s, m, out, m2, err)
		}
	})
}

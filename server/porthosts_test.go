package server

import "testing"

func TestParsePortHost(t *testing.T) {
	const domain = "sandboxes.test"
	for _, tc := range []struct {
		host string
		want portHost
		ok   bool
	}{
		{"8000-a.sandboxes.test", portHost{"a", 8000}, true},
		{"8000-my-box.sandboxes.test:8080", portHost{"my-box", 8000}, true},
		{"8000-Demo.SANDBOXES.test.", portHost{"demo", 8000}, true}, // DNS is case-insensitive
		{"1-x.sandboxes.test", portHost{"x", 1}, true},
		{"65535-x.sandboxes.test", portHost{"x", 65535}, true},
		{"0-x.sandboxes.test", portHost{}, false},
		{"65536-x.sandboxes.test", portHost{}, false},
		{"08000-x.sandboxes.test", portHost{}, false},
		{"8000-.sandboxes.test", portHost{}, false},
		{"8000-x-.sandboxes.test", portHost{}, false},
		{"8000-a.b.sandboxes.test", portHost{}, false},
		{"8000-a_b.sandboxes.test", portHost{}, false},
		{"x8000-a.sandboxes.test", portHost{}, false},
		{"sandboxes.test", portHost{}, false},
		{"8000-a.sandboxes.test.evil.example", portHost{}, false},
		{"8000-a.evilsandboxes.test", portHost{}, false},
		{"127.0.0.1:8080", portHost{}, false},
	} {
		got, ok := parsePortHost(tc.host, domain)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parsePortHost(%q) = %+v, %v; want %+v, %v", tc.host, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := parsePortHost("8000-a.sandboxes.test", ""); ok {
		t.Error("routed without a domain")
	}
}

func TestPortHostURL(t *testing.T) {
	for _, tc := range []struct {
		base, id string
		want     string
	}{
		{"http://127.0.0.1:8080", "demo", "http://8000-demo.sandboxes.test:8080"},
		{"https://api.example.com", "demo", "https://8000-demo.sandboxes.test"},
		{"http://127.0.0.1:8080", "Demo", ""},
		{"http://127.0.0.1:8080", "a.b", ""},
		{"http://127.0.0.1:8080", "a_b", ""},
		{"http://127.0.0.1:8080", "x1234567890123456789012345678901234567890123456789012345678", ""}, // label over 63
	} {
		if got := portHostURL(tc.base, "sandboxes.test", tc.id, 8000); got != tc.want {
			t.Errorf("portHostURL(%q, %q) = %q, want %q", tc.base, tc.id, got, tc.want)
		}
	}
}

func FuzzParsePortHost(f *testing.F) {
	for _, s := range []string{"8000-a.sandboxes.test", "1-x.sandboxes.test:1", "-.sandboxes.test", "8000-a.sandboxes.test."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		ph, ok := parsePortHost(host, "sandboxes.test")
		if !ok {
			return
		}
		if ph.port < 1 || ph.port > 65535 || !hostRoutable(ph.id) {
			t.Fatalf("parsePortHost(%q) = %+v", host, ph)
		}
		// The host names exactly the sandbox and port its URL is made of.
		if u := portHostURL("http://x", "sandboxes.test", ph.id, ph.port); u == "" {
			t.Fatalf("%+v has no host URL", ph)
		}
	})
}

package server

import (
	"testing"
	"time"
)

func TestPreviewTokenRoundTrip(t *testing.T) {
	key := []byte("k")
	now := time.Unix(1_800_000_000, 0)
	c := previewClaims{Session: "demo", Port: 8000, Expires: now.Unix() + 60}
	got, err := parsePreview(key, signPreview(key, c), now)
	if err != nil || got != c {
		t.Fatalf("got %+v %v", got, err)
	}
	if _, err := parsePreview([]byte("other"), signPreview(key, c), now); err == nil {
		t.Fatal("accepted under another key")
	}
	if _, err := parsePreview(key, signPreview(key, c), now.Add(time.Minute)); err == nil {
		t.Fatal("accepted at expiry")
	}
}

// FuzzParsePreview checks that the token parser never panics and accepts
// only tokens this key signed, for a valid sandbox and port, unexpired.
func FuzzParsePreview(f *testing.F) {
	key := []byte("fuzz key")
	now := time.Unix(1_800_000_000, 0)
	f.Add(signPreview(key, previewClaims{Session: "demo", Port: 8000, Expires: now.Unix() + 60}))
	f.Add(signPreview(key, previewClaims{Session: "demo", Port: 0, Expires: now.Unix() + 60}))
	f.Add(signPreview(key, previewClaims{Session: "../x", Port: 80, Expires: now.Unix() + 60}))
	f.Add("eyJzIjoiZGVtbyIsInAiOjgwMDAsImUiOjE3OTk5OTk5OTl9.c2lnbmF0dXJl")
	f.Add(".")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := parsePreview(key, token, now)
		if err != nil {
			return
		}
		if c.Port < 1 || c.Port > 65535 || c.Expires <= now.Unix() || c.Session == "" {
			t.Fatalf("accepted %+v", c)
		}
		if _, err := parsePreview([]byte("another key"), token, now); err == nil {
			t.Fatalf("token %q accepted under another key", token)
		}
	})
}

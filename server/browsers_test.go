package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestGuardBrowsers(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h := guardBrowsers(ok)
	tests := []struct {
		name    string
		host    string
		headers map[string]string
		want    int
	}{
		{"program on loopback", "127.0.0.1:8080", nil, 204},
		{"program on ipv6 loopback", "[::1]:8080", nil, 204},
		{"program on localhost", "localhost:8080", nil, 204},
		{"in-process name", "nox-local.invalid", nil, 204},
		{"program on a LAN address", "10.0.0.5:8080", nil, 204},
		{"same-origin page", "127.0.0.1:8080", map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, 204},
		{"typed into the address bar", "localhost:8080", map[string]string{"Sec-Fetch-Site": "none"}, 204},
		{"cross-site page", "127.0.0.1:8080", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
		{"cross-site without fetch metadata", "127.0.0.1:8080", map[string]string{"Origin": "https://evil.example"}, 403},
		{"another port of this host", "127.0.0.1:8080", map[string]string{"Origin": "http://127.0.0.1:3000", "Sec-Fetch-Site": "same-site"}, 403},
		{"opaque origin", "127.0.0.1:8080", map[string]string{"Origin": "null"}, 403},
		{"rebound DNS name", "evil.example:8080", nil, 403},
		{"rebound DNS name, same origin", "evil.example:8080", map[string]string{"Origin": "http://evil.example:8080", "Sec-Fetch-Site": "same-origin"}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/sandboxes/x/exec", nil)
			r.Host = tt.host
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
		})
	}
}

package server_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

// createPreview asks for a preview URL and returns it.
func (e *portsEnv) createPreview(body string, hdr map[string]string) noxapi.Preview {
	e.t.Helper()
	resp, data := e.send("POST", "/v1/sandboxes/a/previews", strings.NewReader(body), mergeHdr(hdr, map[string]string{"Content-Type": "application/json"}))
	var p noxapi.Preview
	if err := json.Unmarshal(data, &p); err != nil || resp.StatusCode != 200 {
		e.t.Fatalf("createPreview: %d %s", resp.StatusCode, data)
	}
	return p
}

func mergeHdr(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// anonymous requests u (a full URL) without a token.
func anonymous(t *testing.T, method, u string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	e := &portsEnv{t: t}
	return e.send(method, u, nil, hdr)
}

func TestPreviewProxiesWithoutToken(t *testing.T) {
	e := setupPorts(t, "secret")
	port := upstream(t, http.HandlerFunc(echoHandler))
	p := e.createPreview(fmt.Sprintf(`{"port":%d}`, port), nil)
	if !strings.HasPrefix(p.URL, e.url+"/preview/") || !strings.HasSuffix(p.URL, "/") {
		t.Fatalf("url %q", p.URL)
	}
	if d := time.Until(p.ExpiresAt); d < 50*time.Minute || d > 61*time.Minute {
		t.Errorf("expiresAt %s: default ttl is an hour", p.ExpiresAt)
	}
	resp, data := anonymous(t, "POST", p.URL+"deep/path?q=1", map[string]string{"Origin": "http://elsewhere.example", "Authorization": "Bearer not-forwarded"})
	var got seen
	if resp.StatusCode != http.StatusTeapot || json.Unmarshal(data, &got) != nil {
		t.Fatalf("%d %s", resp.StatusCode, data)
	}
	prefix := strings.TrimSuffix(strings.TrimPrefix(p.URL, e.url), "/")
	if got.Path != "/deep/path" || got.Query != "q=1" || got.Header.Get("X-Forwarded-Prefix") != prefix || got.Header.Get("Authorization") != "" {
		t.Errorf("upstream saw %+v", got)
	}
}

func TestPreviewWithoutTokenPassesBrowserGuard(t *testing.T) {
	e := setupPorts(t, "")
	port := upstream(t, http.HandlerFunc(echoHandler))
	p := e.createPreview(fmt.Sprintf(`{"port":%d}`, port), nil)
	resp, data := anonymous(t, "GET", p.URL, map[string]string{"Origin": "http://elsewhere.example", "Sec-Fetch-Site": "cross-site"})
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("%d %s", resp.StatusCode, data)
	}
	// An invalid preview path is not exempt from anything: it is 403.
	resp, data = anonymous(t, "GET", e.url+"/preview/x.y/", nil)
	if resp.StatusCode != 403 {
		t.Fatalf("invalid: %d %s", resp.StatusCode, data)
	}
}

func TestPreviewURLFromForwardedHeaders(t *testing.T) {
	e := setupPorts(t, "secret")
	p := e.createPreview(`{"port":8000,"ttlSeconds":60}`, map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "nox.example.com"})
	if !strings.HasPrefix(p.URL, "https://nox.example.com/preview/") {
		t.Fatalf("url %q", p.URL)
	}
	if d := time.Until(p.ExpiresAt); d > 61*time.Second {
		t.Errorf("expiresAt %s for ttl 60", p.ExpiresAt)
	}
}

func TestPreviewRedirectsToSlash(t *testing.T) {
	e := setupPorts(t, "secret")
	port := upstream(t, http.HandlerFunc(echoHandler))
	p := e.createPreview(fmt.Sprintf(`{"port":%d}`, port), nil)
	resp, data := anonymous(t, "GET", strings.TrimSuffix(p.URL, "/"), nil)
	if resp.StatusCode != http.StatusTeapot { // followed the redirect
		t.Fatalf("%d %s", resp.StatusCode, data)
	}
}

func TestPreviewExpires(t *testing.T) {
	e := setupPorts(t, "secret")
	port := upstream(t, http.HandlerFunc(echoHandler))
	p := e.createPreview(fmt.Sprintf(`{"port":%d,"ttlSeconds":1}`, port), nil)
	time.Sleep(time.Until(p.ExpiresAt) + 50*time.Millisecond)
	resp, data := anonymous(t, "GET", p.URL, nil)
	if resp.StatusCode != 403 || !strings.Contains(string(data), "expired") {
		t.Fatalf("%d %s", resp.StatusCode, data)
	}
}

// tamper rewrites the claims of a preview URL, keeping its signature.
func tamper(t *testing.T, u string, change func(map[string]any)) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.Split(pu.Path, "/")[2]
	payload, sig, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	change(claims)
	raw, _ = json.Marshal(claims)
	pu.Path = "/preview/" + base64.RawURLEncoding.EncodeToString(raw) + "." + sig + "/"
	return pu.String()
}

func TestPreviewTampered(t *testing.T) {
	e := setupPorts(t, "secret")
	port := upstream(t, http.HandlerFunc(echoHandler))
	other := upstream(t, http.HandlerFunc(echoHandler))
	if resp, _ := e.send("PUT", "/v1/sandboxes/b", strings.NewReader("{}"), nil); resp.StatusCode != 200 {
		t.Fatal("create b")
	}
	p := e.createPreview(fmt.Sprintf(`{"port":%d}`, port), nil)
	tests := []struct {
		name string
		url  string
	}{
		{"port", tamper(t, p.URL, func(c map[string]any) { c["p"] = other })},
		{"session", tamper(t, p.URL, func(c map[string]any) { c["s"] = "b" })},
		{"expiry", tamper(t, p.URL, func(c map[string]any) { c["e"] = c["e"].(float64) + 3600 })},
		{"signature", strings.Replace(p.URL, "/preview/", "/preview/x", 1)},
		{"signature bytes", p.URL[:len(p.URL)-3] + "AA/"},
		{"no signature", e.url + "/preview/abc/"},
		{"empty", e.url + "/preview//"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, data := anonymous(t, "GET", tt.url, nil)
			if resp.StatusCode != 403 || !strings.Contains(string(data), "preview URL") {
				t.Fatalf("%d %s", resp.StatusCode, data)
			}
		})
	}
}

func TestCreatePreviewRefusals(t *testing.T) {
	e := setupPorts(t, "secret")
	tests := []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"over max ttl", "/v1/sandboxes/a/previews", `{"port":8000,"ttlSeconds":86401}`, 400, "ttlSeconds"},
		{"zero ttl", "/v1/sandboxes/a/previews", `{"port":8000,"ttlSeconds":0}`, 400, "ttlSeconds"},
		{"port zero", "/v1/sandboxes/a/previews", `{"port":0}`, 400, "port"},
		{"port too big", "/v1/sandboxes/a/previews", `{"port":70000}`, 400, "port"},
		{"unknown sandbox", "/v1/sandboxes/zz/previews", `{"port":8000}`, 404, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, data := e.send("POST", tt.path, strings.NewReader(tt.body), map[string]string{"Content-Type": "application/json"})
			if resp.StatusCode != tt.status || !strings.Contains(string(data), tt.msg) {
				t.Fatalf("got %d %s, want %d naming %q", resp.StatusCode, data, tt.status, tt.msg)
			}
		})
	}
	e.token = ""
	if resp, _ := e.send("POST", "/v1/sandboxes/a/previews", strings.NewReader(`{"port":8000}`), map[string]string{"Content-Type": "application/json"}); resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
}

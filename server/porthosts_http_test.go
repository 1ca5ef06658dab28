package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/noxrunner/nox/server"
)

// hostRequest sends method path to the test server addressed to host,
// without following redirects.
func hostRequest(t *testing.T, srvURL, method, host, path string, hdr map[string]string, cookies ...*http.Cookie) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srvURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

func TestPortHostRouting(t *testing.T) {
	e := setupPortsOpts(t, server.Options{Token: "secret", PortDomain: "Sandboxes.Test."})
	port := upstream(t, http.HandlerFunc(echoHandler))
	host := fmt.Sprintf("%d-a.sandboxes.test", port)

	// With the token: the path is the app's own, at "/".
	resp, data := hostRequest(t, e.url, "POST", host, "/deep/path?q=1", map[string]string{"Authorization": "Bearer secret"})
	var got seen
	if resp.StatusCode != http.StatusTeapot || json.Unmarshal(data, &got) != nil {
		t.Fatalf("with token: %d %s", resp.StatusCode, data)
	}
	if got.Path != "/deep/path" || got.Query != "q=1" || got.Header.Get("Authorization") != "" || got.Header.Get("X-Forwarded-Prefix") != "" {
		t.Errorf("upstream saw %+v", got)
	}
	// Without: 401; a wrong token too.
	for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer wrong"}} {
		if resp, data := hostRequest(t, e.url, "GET", host, "/", hdr); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%v: %d %s", hdr, resp.StatusCode, data)
		}
	}

	// A preview URL of the port is on its host; its parameter is traded
	// for a cookie of that host.
	p := e.createPreview(fmt.Sprintf(`{"port":%d}`, port), nil)
	u, err := url.Parse(p.URL)
	if err != nil || u.Hostname() != host || u.Path != "/" || u.Query().Get("nox_preview") == "" {
		t.Fatalf("preview URL %q", p.URL)
	}
	resp, data = hostRequest(t, e.url, "GET", u.Host, "/?"+u.RawQuery+"&keep=1", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?keep=1" {
		t.Fatalf("first visit: %d %v %s", resp.StatusCode, resp.Header, data)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "nox_preview" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" {
		t.Fatalf("cookie %+v", cookie)
	}
	resp, data = hostRequest(t, e.url, "GET", host, "/app", nil, &http.Cookie{Name: "nox_preview", Value: cookie.Value}, &http.Cookie{Name: "app", Value: "kept"})
	got = seen{}
	if resp.StatusCode != http.StatusTeapot || json.Unmarshal(data, &got) != nil {
		t.Fatalf("with the cookie: %d %s", resp.StatusCode, data)
	}
	if c := got.Header.Get("Cookie"); strings.Contains(c, "nox_preview") || !strings.Contains(c, "app=kept") {
		t.Errorf("upstream got Cookie %q", c)
	}
	// The token of one port opens no other port or sandbox.
	other := upstream(t, http.HandlerFunc(echoHandler))
	for _, h := range []string{fmt.Sprintf("%d-a.sandboxes.test", other), fmt.Sprintf("%d-b.sandboxes.test", port)} {
		if resp, data := hostRequest(t, e.url, "GET", h, "/", nil, &http.Cookie{Name: "nox_preview", Value: cookie.Value}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s with another port's cookie: %d %s", h, resp.StatusCode, data)
		}
		if resp, data := hostRequest(t, e.url, "GET", h, "/?nox_preview="+cookie.Value, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s with another port's parameter: %d %s", h, resp.StatusCode, data)
		}
	}
	// Other hosts reach the API as before.
	if resp, data := hostRequest(t, e.url, "GET", "127.0.0.1", "/v1/info", map[string]string{"Authorization": "Bearer secret"}); resp.StatusCode != 200 || !strings.Contains(string(data), `"portDomain":"sandboxes.test"`) {
		t.Errorf("info: %d %s", resp.StatusCode, data)
	}
}

func TestPortDomainInvalid(t *testing.T) {
	for _, d := range []string{"localhost", "a..b", "exa_mple.com", "-x.example.com"} {
		if _, err := server.New(nil, server.Options{PortDomain: d}); err == nil {
			t.Errorf("PortDomain %q accepted", d)
		}
	}
}

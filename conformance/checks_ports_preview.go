package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

// previewPath is the previews path of sandbox id.
func previewPath(id string) string {
	return "/v1/sandboxes/" + url.PathEscape(id) + "/previews"
}

// preview is a Preview read leniently.
type preview struct {
	URL       string      `json:"url"`
	ExpiresAt lenientTime `json:"expiresAt"`
}

// createPreview asks for a preview URL of port in sandbox id, living ttl
// seconds (nil: the default).
func (e *Env) createPreview(ctx context.Context, id string, port int, ttl *int32) (*Exchange, error) {
	return e.send(ctx, "create a preview of "+id, func() (*http.Response, error) {
		return e.Client.CreatePreview(ctx, id, noxapi.PreviewRequest{Port: int32(port), TTLSeconds: ttl})
	})
}

// previewOK creates a preview and reads it; judge makes the answer the
// check's subject.
func (e *Env) previewOK(ctx context.Context, id string, port int, ttl *int32, judge bool) (preview, *Exchange, error) {
	var p preview
	x, err := e.createPreview(ctx, id, port, ttl)
	if err != nil {
		return p, x, err
	}
	if judge {
		x.judge()
		err = expectStatus(x, http.StatusOK)
	} else {
		err = expectSuccess(x)
	}
	if err != nil {
		return p, x, err
	}
	if err := json.Unmarshal(x.Body, &p); err != nil || p.URL == "" || p.ExpiresAt.IsZero() {
		return p, x, portsFinding(x, bodyExcerpt(x), "a Preview with url and expiresAt", errors.New("the preview answer has no url or expiresAt"))
	}
	if !strings.HasSuffix(p.URL, "/") {
		return p, x, portsFinding(x, p.URL, "a URL ending with /", errors.New("the preview URL does not end with /"))
	}
	return p, x, nil
}

func checkPortsPreview(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "ports-preview")
	if err != nil {
		return err
	}
	port, err := env.portServer(ctx, id, "http")
	if err != nil {
		return err
	}
	ttl := int32(600)
	asked := time.Now()
	p, x, err := env.previewOK(ctx, id, port, &ttl, true)
	if err != nil {
		return err
	}
	var errs []error
	if want := asked.Add(time.Duration(ttl) * time.Second); !within(p.ExpiresAt.Time, want, time.Minute) {
		errs = append(errs, portsFinding(x, "expiresAt "+p.ExpiresAt.Format(time.RFC3339), "about "+want.UTC().Format(time.RFC3339),
			errors.New("expiresAt is not ttlSeconds after the request")))
	}
	y, err := env.getURL(ctx, p.URL+portsFile)
	if err != nil {
		return err
	}
	if y.Status != http.StatusOK || string(y.Body) != portsFileContent {
		errs = append(errs, portsFinding(y, fmt.Sprintf("status %d %q", y.Status, clip(string(y.Body), 60)), fmt.Sprintf("200 %q", portsFileContent),
			errors.New("the preview URL, without a token, did not serve the file's exact bytes")))
	}
	bad, err := tamper(p.URL)
	if err != nil {
		return portsFinding(x, p.URL, "a URL under /preview/", err)
	}
	y, err = env.getURL(ctx, bad+portsFile)
	if err != nil {
		return err
	}
	if y.Status != http.StatusForbidden {
		errs = append(errs, portsFinding(y, fmt.Sprintf("status %d", y.Status), "403", errors.New("a tampered preview URL was not refused 403")))
	}
	return errors.Join(errs...)
}

// tamper changes one character of the signed part of preview URL u (the
// path element after /preview/).
func tamper(u string) (string, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("the preview URL does not parse: %w", err)
	}
	i := strings.Index(pu.Path, "/preview/")
	if i < 0 || len(pu.Path) <= i+len("/preview/")+1 {
		return "", errors.New("the preview URL's path is not under /preview/")
	}
	b := []byte(pu.Path)
	j := i + len("/preview/") + 1 // a character inside the token, not a separator
	if b[j] == 'A' {
		b[j] = 'B'
	} else {
		b[j] = 'A'
	}
	pu.Path, pu.RawPath = string(b), ""
	return pu.String(), nil
}

func checkPortsPreviewExpires(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "ports-expire")
	if err != nil {
		return err
	}
	port, err := env.portServer(ctx, id, "http")
	if err != nil {
		return err
	}
	ttl := int32(1)
	p, _, err := env.previewOK(ctx, id, port, &ttl, false)
	if err != nil {
		return err
	}
	if err := waitUntil(ctx, p.ExpiresAt.Time.Add(time.Second)); err != nil {
		return err
	}
	y, err := env.getURL(ctx, p.URL+portsFile)
	if err != nil {
		return err
	}
	if y.Status != http.StatusForbidden {
		return portsFinding(y, fmt.Sprintf("status %d", y.Status), "403",
			fmt.Errorf("a preview URL whose expiresAt (%s) has passed still answers", p.ExpiresAt.Format(time.RFC3339)))
	}
	return nil
}

func checkPortsPreviewTTL(ctx context.Context, env *Env) error {
	max := limits(env).MaxPreviewTTLSeconds
	if max == nil || *max <= 0 || *max == 1<<31-1 {
		return SkipUnclaimed("the backend advertises no maxPreviewTtlSeconds")
	}
	id, err := env.NewSandbox(ctx, "ports-ttl")
	if err != nil {
		return err
	}
	over := *max + 1
	x, err := env.createPreview(ctx, id, 8000, &over)
	if err != nil {
		return err
	}
	return expectErrorNamingAny(x, http.StatusBadRequest, "ttlSeconds")
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// api is a client of the gateway's HTTP API with a bearer token.
type api struct {
	base  string
	token string
	hc    *http.Client
}

// newAPI makes a client whose keep-alive pool holds conns connections.
func newAPI(sys *system, conns int) *api {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &api{base: sys.URL, token: sys.Token, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (a *api) close() { a.hc.CloseIdleConnections() }

// submit posts a job and returns its id.
func (a *api) submit(ctx context.Context, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/api/jobs", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("POST /api/jobs: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	id, ok := strings.CutPrefix(resp.Header.Get("Location"), "/api/jobs/")
	if !ok || id == "" {
		return "", fmt.Errorf("POST /api/jobs: 202 without a Location")
	}
	return id, nil
}

// cancel asks for a job to be canceled; a job that already ended is fine.
func (a *api) cancel(ctx context.Context, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/api/jobs/"+id+"/cancel", strings.NewReader(`{"reason":"benchmark over"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusConflict {
		return fmt.Errorf("cancel %s: %s: %s", id, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

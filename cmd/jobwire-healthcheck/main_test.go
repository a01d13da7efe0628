package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := run(context.Background(), []string{srv.URL + "/readyz"}, io.Discard); err != nil {
		t.Errorf("ready server: %v", err)
	}
	err := run(context.Background(), []string{srv.URL + "/other"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("unready server: err = %v, want 503", err)
	}
	if err := run(context.Background(), nil, io.Discard); err == nil {
		t.Error("no URL: no error")
	}
	srv.Close()
	if err := run(context.Background(), []string{srv.URL + "/readyz"}, io.Discard); err == nil {
		t.Error("closed server: no error")
	}
}

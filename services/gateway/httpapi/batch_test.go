package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
)

// A batch submit answers each job on its own, in order: good jobs are
// stored (and readable at once), bad ones get the error a single submit
// would, and never keep the good ones out. Each item's idempotency key
// works like the Idempotency-Key header. The answers match openapi.json.
func TestBatchSubmit(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	k := newContract(t)
	type result struct {
		Status   int            `json:"status"`
		Job      *jobs.Snapshot `json:"job"`
		Replayed bool           `json:"replayed"`
		Error    *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	post := func(body string) (int, []result) {
		t.Helper()
		resp, b := call(t, sys, "POST", "/api/jobs:batch", "application/json", body, nil)
		k.checkResponse("/api/jobs:batch", "POST", resp, b)
		var out struct {
			Results []result `json:"results"`
		}
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
		}
		return resp.StatusCode, out.Results
	}
	code, got := post(`{"jobs":[
		{"type":"demo","input":{"steps":1}},
		{"type":"nosuch"},
		{"type":"demo","input":{"steps":"many"}},
		{"type":"demo","input":{"steps":2},"idempotency_key":"k1"},
		{"type":"demo","input":{"steps":2},"idempotency_key":"k1"},
		{"type":"demo","input":{"steps":3},"idempotency_key":"k2"}
	]}`)
	want := []struct {
		status int
		code   string
	}{{202, ""}, {422, "unknown_type"}, {422, "invalid_input"}, {202, ""}, {409, "in_progress"}, {202, ""}}
	if code != http.StatusOK || len(got) != len(want) {
		t.Fatalf("batch: %d, %d results, want 200 and %d", code, len(got), len(want))
	}
	var stored []string
	for i, w := range want {
		r := got[i]
		switch {
		case r.Status != w.status:
			t.Errorf("item %d: status %d, want %d", i, r.Status, w.status)
		case w.status == 202 && (r.Job == nil || r.Job.Status != jobs.StatusQueued || r.Job.Seq != 1 || r.Error != nil):
			t.Errorf("item %d: %+v, want a queued job", i, r)
		case w.status != 202 && (r.Error == nil || r.Error.Code != w.code || r.Job != nil):
			t.Errorf("item %d: %+v, want error %s", i, r, w.code)
		}
		if r.Job != nil {
			stored = append(stored, r.Job.ID)
		}
	}
	for _, id := range stored {
		if snap, code := sys.Get(t, id); code != http.StatusOK || snap.Status != jobs.StatusQueued {
			t.Errorf("GET %s: %d %+v", id, code, snap)
		}
	}
	if q, e := sys.StreamCounts(t); q != uint64(len(stored)) || e != 0 {
		t.Errorf("stored %d requests and %d events, want %d and 0", q, e, len(stored))
	}

	// The keys again, in a batch of their own: the first jobs, replayed;
	// a key with another body is refused.
	_, again := post(`{"jobs":[{"type":"demo","input":{"steps":2},"idempotency_key":"k1"},{"type":"demo","input":{"steps":9},"idempotency_key":"k2"}]}`)
	if len(again) != 2 || again[0].Status != 202 || !again[0].Replayed || again[0].Job == nil || again[0].Job.ID != got[3].Job.ID {
		t.Errorf("replayed key: %+v, want job %s replayed", again, got[3].Job.ID)
	}
	if len(again) == 2 && (again[1].Status != 422 || again[1].Error == nil || again[1].Error.Code != "idempotency_key_reused") {
		t.Errorf("reused key: %+v, want 422 idempotency_key_reused", again[1])
	}

	// Too many jobs, or no jobs array: refused as a whole, nothing stored.
	items := strings.TrimSuffix(strings.Repeat(`{"type":"demo"},`, 1001), ",")
	if code, _ := post(fmt.Sprintf(`{"jobs":[%s]}`, items)); code != http.StatusBadRequest {
		t.Errorf("1001 jobs: %d, want 400", code)
	}
	if code, _ := post(`{}`); code != http.StatusBadRequest {
		t.Errorf("no jobs: %d, want 400", code)
	}
	if code, res := post(`{"jobs":[]}`); code != http.StatusOK || len(res) != 0 {
		t.Errorf("empty batch: %d %v, want 200 and no results", code, res)
	}
	if q, _ := sys.StreamCounts(t); q != uint64(len(stored)) {
		t.Errorf("after the refused batches: %d requests, want %d", q, len(stored))
	}
}

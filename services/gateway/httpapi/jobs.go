package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/jobwire/jobwire/services/gateway/jobops"
	"github.com/jobwire/jobwire/shared/jobs"
)

// handleSubmit is POST /api/jobs: the body is a jobops.SubmitRequest.
func handleSubmit(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req jobops.SubmitRequest
		if err := decode(w, r, g.cfg.MaxBodyBytes, &req); err != nil {
			writeError(w, err)
			return
		}
		snap, replayed, err := g.ops.Submit(r.Context(), principalFrom(r.Context()).caller(), req, r.Header.Get("Idempotency-Key"))
		if err != nil {
			writeError(w, err)
			return
		}
		noteJob(r.Context(), snap, replayed)
		w.Header().Set("Location", "/api/jobs/"+snap.ID)
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		encode(w, http.StatusAccepted, snap)
	}
}

// batchBodyBytes is the largest body of a batch submit: room for MaxBatch
// small jobs, or MAX_BODY_BYTES if that is larger.
func batchBodyBytes(limit int64) int64 { return max(limit, 8<<20) }

// handleSubmitBatch submits up to jobops.MaxBatch jobs in one request:
// each item is checked and stored on its own, with its own result in the
// answer, in order (200, whatever the items' outcomes).
func handleSubmitBatch(g *Gateway) http.HandlerFunc {
	type request struct {
		Jobs []jobops.BatchItem `json:"jobs"`
	}
	type result struct {
		Status   int            `json:"status"`
		Job      *jobs.Snapshot `json:"job,omitempty"`
		Replayed bool           `json:"replayed,omitempty"`
		Error    *apiError      `json:"error,omitempty"`
	}
	type response struct {
		Results []result `json:"results"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decode(w, r, batchBodyBytes(g.cfg.MaxBodyBytes), &req); err != nil {
			writeError(w, err)
			return
		}
		if req.Jobs == nil {
			writeError(w, &jobops.InvalidArgumentError{Msg: `"jobs" is required: an array of {"type", "input", "idempotency_key"}`})
			return
		}
		results, err := g.ops.SubmitMany(r.Context(), principalFrom(r.Context()).caller(), req.Jobs)
		if err != nil {
			writeError(w, err)
			return
		}
		resp := response{Results: make([]result, len(results))}
		for i, res := range results {
			if res.Err != nil {
				ae := apiErrorOf(res.Err)
				resp.Results[i] = result{Status: ae.Status, Error: ae}
				continue
			}
			job := res.Job
			resp.Results[i] = result{Status: http.StatusAccepted, Job: &job, Replayed: res.Replayed}
		}
		encode(w, http.StatusOK, resp)
	}
}

func handleGet(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		snap, err := g.ops.Snapshot(r.Context(), principalFrom(r.Context()).caller(), chi.URLParam(r, "id"))
		if err != nil {
			writeError(w, err)
			return
		}
		encode(w, http.StatusOK, snap)
	}
}

// handleStats is GET /api/stats: per job type, the caller's jobs by
// status and those ended per minute over the last hour; for an admin,
// every job, and each type's queue and runners.
func handleStats(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		stats, err := g.ops.Stats(r.Context(), principalFrom(r.Context()).caller())
		if err != nil {
			writeError(w, err)
			return
		}
		encode(w, http.StatusOK, stats)
	}
}

// handleRetry is POST /api/jobs/{id}/retry: 202 and the new job (a second
// retry of the same job: the same new job, with Idempotent-Replayed).
func handleRetry(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		snap, replayed, err := g.ops.Retry(r.Context(), principalFrom(r.Context()).caller(), chi.URLParam(r, "id"))
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Location", "/api/jobs/"+snap.ID)
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		encode(w, http.StatusAccepted, snap)
	}
}

func handleList(g *Gateway) http.HandlerFunc {
	type response struct {
		Jobs       []json.RawMessage `json:"jobs"` // jobs.Snapshot
		NextCursor string            `json:"next_cursor,omitempty"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, err := queryInt(r, "limit", 50, 1, 500)
		if err != nil {
			writeError(w, err)
			return
		}
		var resp response
		resp.Jobs, resp.NextCursor, err = g.ops.List(r.Context(), principalFrom(r.Context()).caller(), jobops.ListQuery{
			Limit: limit, Status: jobs.Status(q.Get("status")), Type: q.Get("type"), Cursor: q.Get("cursor"),
		})
		if err != nil {
			writeError(w, err)
			return
		}
		encode(w, http.StatusOK, resp)
	}
}

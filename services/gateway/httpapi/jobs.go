package httpapi

import (
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

func handleGet(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ev, err := g.ops.Get(r.Context(), principalFrom(r.Context()).caller(), chi.URLParam(r, "id"))
		if err != nil {
			writeError(w, err)
			return
		}
		encode(w, http.StatusOK, jobs.SnapshotOf(ev))
	}
}

func handleList(g *Gateway) http.HandlerFunc {
	type response struct {
		Jobs       []jobs.Snapshot `json:"jobs"`
		NextCursor string          `json:"next_cursor,omitempty"`
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

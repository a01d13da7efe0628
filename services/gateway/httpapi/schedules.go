package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/jobwire/jobwire/services/gateway/jobops"
)

// handleCreateSchedule is POST /api/schedules: 201 and the schedule.
func handleCreateSchedule(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req jobops.ScheduleRequest
		if err := decode(w, r, g.cfg.MaxBodyBytes, &req); err != nil {
			writeError(w, err)
			return
		}
		sc, err := g.ops.CreateSchedule(r.Context(), principalFrom(r.Context()).caller(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Location", "/api/schedules/"+sc.ID)
		encode(w, http.StatusCreated, sc)
	}
}

// handleListSchedules is GET /api/schedules: the caller's schedules (an
// admin's: everyone's).
func handleListSchedules(g *Gateway) http.HandlerFunc {
	type response struct {
		Schedules []jobops.Schedule `json:"schedules"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		list, err := g.ops.ListSchedules(r.Context(), principalFrom(r.Context()).caller())
		if err != nil {
			writeError(w, err)
			return
		}
		encode(w, http.StatusOK, response{list})
	}
}

// handleGetSchedule is GET /api/schedules/{id}.
func handleGetSchedule(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sc, err := g.ops.GetSchedule(r.Context(), principalFrom(r.Context()).caller(), chi.URLParam(r, "id"))
		if err != nil {
			writeError(w, err)
			return
		}
		encode(w, http.StatusOK, sc)
	}
}

// handleDeleteSchedule is DELETE /api/schedules/{id}: 204.
func handleDeleteSchedule(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := g.ops.DeleteSchedule(r.Context(), principalFrom(r.Context()).caller(), chi.URLParam(r, "id")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// handlePauseSchedule is POST /api/schedules/{id}/pause (paused) and
// /resume: 200 and the schedule.
func handlePauseSchedule(g *Gateway, paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sc, err := g.ops.PauseSchedule(r.Context(), principalFrom(r.Context()).caller(), chi.URLParam(r, "id"), paused)
		if err != nil {
			writeError(w, err)
			return
		}
		encode(w, http.StatusOK, sc)
	}
}

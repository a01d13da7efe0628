package httpapi

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/jobwire/jobwire/services/gateway/jobops"
)

// handleCancel is POST /api/jobs/{id}/cancel, with an optional body
// {"reason": "..."}.
func handleCancel(g *Gateway) http.HandlerFunc {
	type request struct {
		Reason string `json:"reason"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var body request
		if r.ContentLength != 0 {
			if err := decode(w, r, g.cfg.MaxBodyBytes, &body); err != nil {
				writeError(w, err)
				return
			}
		}
		snap, err := g.ops.Cancel(r.Context(), principalFrom(r.Context()).caller(), chi.URLParam(r, "id"), body.Reason)
		if finished := (*jobops.AlreadyFinishedError)(nil); errors.As(err, &finished) {
			writeAlreadyFinished(w, finished)
			return
		}
		if err != nil {
			writeError(w, err)
			return
		}
		encode(w, http.StatusAccepted, snap)
	}
}

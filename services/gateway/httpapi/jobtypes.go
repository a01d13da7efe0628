package httpapi

import "net/http"

// handleJobTypes is GET /api/job-types: every type a runner registered.
func handleJobTypes(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]any{"job_types": g.ops.Types()})
	}
}

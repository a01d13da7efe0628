package httpapi

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// NewServer lists every route of the gateway.
func NewServer(g *Gateway) http.Handler {
	r := chi.NewRouter()
	r.Use(g.metrics.instrument, middleware.Recoverer, securityHeaders, cors(g.allowed), g.crossOrigin.Handler)
	r.MethodNotAllowed(handleMethodNotAllowed(r))

	r.Get("/healthz", handleHealthz())
	r.Get("/readyz", handleReadyz(g))
	r.Handle("/static/*", handleStatic())

	r.Route("/api", func(r chi.Router) {
		r.Get("/job-types", handleJobTypes(g))
		r.Get("/openapi.json", handleOpenAPI())
		r.Group(func(r chi.Router) {
			r.Use(requireAuth(g.auth))
			r.With(traceSubmit(g.cfg.TracerProvider, "/api/jobs"), g.submitLimit).Post("/jobs", handleSubmit(g))
			r.With(traceSubmit(g.cfg.TracerProvider, "/api/jobs:batch"), g.submitLimit).Post("/jobs:batch", handleSubmitBatch(g))
			r.Get("/jobs", handleList(g))
			r.Get("/stats", handleStats(g))
			r.Get("/schedules", handleListSchedules(g))
			r.With(g.submitLimit).Post("/schedules", handleCreateSchedule(g))
			r.Get("/schedules/{id}", handleGetSchedule(g))
			r.Delete("/schedules/{id}", handleDeleteSchedule(g))
			r.Post("/schedules/{id}/pause", handlePauseSchedule(g, true))
			r.Post("/schedules/{id}/resume", handlePauseSchedule(g, false))
			r.Get("/jobs/{id}", handleGet(g))
			r.Post("/jobs/{id}/cancel", handleCancel(g))
			r.With(g.submitLimit).Post("/jobs/{id}/retry", handleRetry(g))
			r.Get("/jobs/{id}/events", handleEvents(g)) // SSE; no middleware.Timeout here either
		})
		r.NotFound(handleAPINotFound())
	})

	// no middleware.Timeout here: it would cut WebSockets
	r.With(requireAuthWebSocket(g.auth)).Get("/ws", handleWebSocket(g))
	r.With(requireAuth(g.auth), traceSubmit(g.cfg.TracerProvider, "/jobs"), g.submitLimit).Post("/jobs", handleSubmitForm(g))
	r.Group(func(r chi.Router) {
		r.Use(allowAnyone(g.auth))
		r.Get("/", handlePage("index.html"))
		r.Get("/overview", handlePage("overview.html"))
		r.Get("/schedules", handlePage("schedules.html"))
		r.Get("/jobs/{id}", handleJobPage(g))
	})
	return r
}

func handleAPINotFound() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, "not_found", "no such endpoint: %s %s", r.Method, r.URL.Path))
	}
}

// handleMethodNotAllowed answers 405 with the methods the path does allow
// (found in routes) in the Allow header.
func handleMethodNotAllowed(routes chi.Routes) http.HandlerFunc {
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range methods {
			if routes.Match(chi.NewRouteContext(), m, r.URL.Path) {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
		}
		writeError(w, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s", r.Method, r.URL.Path))
	}
}

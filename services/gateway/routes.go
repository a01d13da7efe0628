package main

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// NewServer lists every route of the gateway.
func NewServer(g *gateway) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer, securityHeaders, g.crossOrigin.Handler)
	r.MethodNotAllowed(handleMethodNotAllowed(r))

	r.Get("/healthz", handleHealthz())
	r.Get("/readyz", handleReadyz(g))
	r.Handle("/static/*", handleStatic())

	r.Route("/api", func(r chi.Router) {
		r.Get("/job-types", handleJobTypes(g))
		r.Get("/openapi.json", handleOpenAPI())
		r.Group(func(r chi.Router) {
			r.Use(requireAuth(g.auth))
			r.With(g.submitLimit).Post("/jobs", handleSubmit(g))
			r.Get("/jobs", handleList(g))
			r.Get("/jobs/{id}", handleGet(g))
			r.Post("/jobs/{id}/cancel", handleCancel(g))
			r.Get("/jobs/{id}/events", handleEvents(g)) // SSE; no middleware.Timeout here either
		})
		r.NotFound(handleAPINotFound())
	})

	r.Group(func(r chi.Router) {
		r.Use(requireAuth(g.auth))
		r.Get("/ws", handleWebSocket(g)) // no middleware.Timeout here: it would cut WebSockets
		r.Get("/", handlePage("index.html"))
		r.With(g.submitLimit).Post("/jobs", handleSubmitForm(g))
		r.Get("/jobs/{id}", handleJobPage(g))
	})
	return r
}

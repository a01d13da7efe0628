package httpapi

import (
	"net/http"
	"strconv"

	"github.com/jobwire/jobwire/shared/jobs/schema"
)

// handleOpenAPI serves the OpenAPI 3.1 document of the HTTP API, the one
// embedded in shared/jobs/schema and tested against the gateway.
func handleOpenAPI() http.HandlerFunc {
	doc := schema.Bytes(schema.OpenAPI)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(doc)
	}
}

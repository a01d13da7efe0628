package httpapi

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/jobwire/jobwire/services/gateway/jobops"
)

//go:embed web
var webFiles embed.FS

func webFS() fs.FS {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// pages are the HTML pages by file name, made once from templates that
// share their head and header (web/layout.tmpl). No page shows data from
// the server: their scripts fetch it.
var pages = func() map[string][]byte {
	t := template.Must(template.ParseFS(webFiles, "web/*.html", "web/layout.tmpl"))
	out := map[string][]byte{}
	for _, p := range t.Templates() {
		if strings.HasSuffix(p.Name(), ".html") {
			var b bytes.Buffer
			if err := p.Execute(&b, nil); err != nil {
				panic(err) // the embedded templates are fixed at build time
			}
			out[p.Name()] = b.Bytes()
		}
	}
	return out
}()

// handleStatic serves the pages' scripts, styles and images (not the
// pages themselves, their templates, nor directory listings).
func handleStatic() http.Handler {
	files := http.StripPrefix("/static/", http.FileServerFS(webFS()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || strings.HasSuffix(r.URL.Path, ".html") || strings.HasSuffix(r.URL.Path, ".tmpl") {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// handlePage serves one embedded HTML page.
func handlePage(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		servePage(w, name, http.StatusOK)
	}
}

func servePage(w http.ResponseWriter, name string, status int) {
	b, ok := pages[name]
	if !ok {
		http.Error(w, "page missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// handleJobPage serves the progress page; its script fills it over /ws.
// The status code already tells an unknown job (404) from a known one,
// for a caller the gateway knows (one who has yet to sign in gets 200).
func handleJobPage(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status := http.StatusOK
		p := principalFrom(r.Context())
		if p.Owner == "" {
			servePage(w, "job.html", status)
			return
		}
		if _, err := g.ops.Get(r.Context(), p.caller(), chi.URLParam(r, "id")); err != nil {
			if ae := apiErrorOf(err); ae.Status != http.StatusServiceUnavailable {
				status = ae.Status
			}
		}
		servePage(w, "job.html", status)
	}
}

// handleSubmitForm is the page's "Queue job" form: it submits like
// POST /api/jobs and redirects to the job's progress page.
func handleSubmitForm(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes)
		if err := r.ParseForm(); err != nil {
			writeError(w, decodeError(err, g.cfg.MaxBodyBytes))
			return
		}
		req := jobops.SubmitRequest{Type: r.PostForm.Get("type")}
		if in := r.PostForm.Get("input"); in != "" {
			req.Input = []byte(in)
		}
		snap, _, err := g.ops.Submit(r.Context(), principalFrom(r.Context()).caller(), req, "")
		if err != nil {
			writeError(w, err)
			return
		}
		noteJob(r.Context(), snap, false)
		http.Redirect(w, r, "/jobs/"+snap.ID, http.StatusSeeOther)
	}
}

package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
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

// staticTags are the static files' ETags: the first 12 bytes of each
// file's SHA-256 in hex, which is also the file's version (versioned).
var staticTags = func() map[string]string {
	tags := map[string]string{}
	err := fs.WalkDir(webFS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(webFS(), name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		tags[name] = hex.EncodeToString(sum[:12])
		return nil
	})
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return tags
}()

// versioned is the path of a static file that names its version, e.g.
// /static/v/<version>/jobwire.js: such a URL never changes what it serves.
func versioned(name string) string {
	return "/static/v/" + staticTags[name] + "/" + name
}

// handleStatic serves the pages' scripts, styles and images (not the
// pages themselves, their templates, nor directory listings), and
// jobwire.js for other origins' pages. Every file has an ETag (its
// content's hash) and is revalidated before use (Cache-Control: no-cache,
// a 304 when unchanged); under /static/v/<version>/ it is cached for a
// year (the version is the hash: another version is another URL, and an
// outdated one is 404). Link names a file's versioned URL.
func handleStatic() http.Handler {
	files := http.FileServerFS(webFS())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		cache := "no-cache"
		if rest, ok := strings.CutPrefix(name, "v/"); ok {
			version, file, _ := strings.Cut(rest, "/")
			if staticTags[file] != version {
				http.NotFound(w, r)
				return
			}
			name, cache = file, "public, max-age=31536000, immutable"
		}
		tag, ok := staticTags[name]
		if !ok || strings.HasSuffix(name, ".html") || strings.HasSuffix(name, ".tmpl") {
			http.NotFound(w, r) // also directories
			return
		}
		h := w.Header()
		h.Set("ETag", `"`+tag+`"`)
		h.Set("Cache-Control", cache)
		h.Set("Link", "<"+versioned(name)+`>; rel="canonical"`)
		if strings.HasSuffix(name, ".d.ts") {
			h.Set("Content-Type", "text/plain; charset=utf-8") // types to read, not to run
		}
		r2 := new(http.Request)
		*r2 = *r
		r2.URL = new(url.URL)
		*r2.URL = *r.URL
		r2.URL.Path = "/" + name
		files.ServeHTTP(w, r2)
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

package httpapi_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
)

const appOrigin = "https://app.example.com"

func corsSystem(t *testing.T) *testsys.System {
	t.Helper()
	return testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) {
		c.AllowedOrigins = []string{appOrigin}
	}))
}

// checkNoCredentials fails if an answer lets another origin read what
// cookies show.
func checkNoCredentials(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	if v := resp.Header.Get("Access-Control-Allow-Credentials"); v != "" {
		t.Errorf("%s: Access-Control-Allow-Credentials %q; want none", what, v)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") == "*" {
		t.Errorf("%s: Access-Control-Allow-Origin *; want the origin or nothing", what)
	}
}

// An origin of ALLOWED_ORIGINS gets CORS headers on the API (preflights
// included) and may call it with a bearer token; another origin gets none
// and its writes are refused; the session cookie never works across
// origins.
func TestCORSForAllowedOriginsOnly(t *testing.T) {
	t.Parallel()
	sys := corsSystem(t)
	token := testsys.Token(t, "alice", false, time.Hour)
	alice := sys.As(token)

	// Preflight of a submit with a token and an idempotency key.
	preflight := func(origin string) *http.Response {
		resp, _ := sys.Call(t, "OPTIONS", "/api/jobs", "", "", map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
		})
		checkNoCredentials(t, "preflight from "+origin, resp)
		return resp
	}
	resp := preflight(appOrigin)
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != appOrigin ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(allowed, "authorization") || !strings.Contains(allowed, "content-type") || !strings.Contains(allowed, "idempotency-key") {
		t.Errorf("preflight from an allowed origin: %d %v; want 204 allowing POST with Authorization, Content-Type, Idempotency-Key", resp.StatusCode, resp.Header)
	}
	if resp := preflight("https://evil.example"); resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.StatusCode < 400 {
		t.Errorf("preflight from another origin: %d %v; want a refusal without CORS headers", resp.StatusCode, resp.Header)
	}

	// The request itself, with the token, as a browser sends it.
	submit := func(as *testsys.System, origin string) *http.Response {
		resp, _ := as.Call(t, "POST", "/api/jobs", "application/json", `{"type":"demo","input":{"steps":1}}`,
			map[string]string{"Origin": origin, "Sec-Fetch-Site": "cross-site", "Idempotency-Key": "cors-" + origin})
		checkNoCredentials(t, "submit from "+origin, resp)
		return resp
	}
	resp = submit(alice, appOrigin)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Access-Control-Allow-Origin") != appOrigin ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Location") || !strings.Contains(resp.Header.Get("Vary"), "Origin") {
		t.Errorf("submit with a token from an allowed origin: %d %v; want 202 with CORS headers exposing Location", resp.StatusCode, resp.Header)
	}
	if resp := submit(alice, "https://evil.example"); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("submit from another origin: %d %v; want 403 without CORS headers", resp.StatusCode, resp.Header)
	}
	// The session cookie, from the allowed origin: refused.
	sys.Do(t, "GET", "/api/jobs", "", "", nil, nil) // makes the session
	if resp := submit(sys, appOrigin); resp.StatusCode != http.StatusForbidden {
		t.Errorf("submit with the session cookie from an allowed origin: %d; want 403 (cookies are same-origin only)", resp.StatusCode)
	}
	resp, _ = sys.Call(t, "POST", "/jobs", "application/x-www-form-urlencoded", `type=demo&input={"steps":1}`,
		map[string]string{"Origin": appOrigin, "Sec-Fetch-Site": "cross-site"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("the queue form posted with the session cookie from an allowed origin: %d; want 403", resp.StatusCode)
	}
	// The gateway's own form, posted under its Referrer-Policy (Origin: null).
	noRedirect := *sys.HTTPClient()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest("POST", sys.URL+"/jobs", strings.NewReader(`type=demo&input={"steps":1}`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "null")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if resp, err := noRedirect.Do(req); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the queue form posted from the gateway's own page: %v %v; want 303 to the job", resp, err)
	} else {
		resp.Body.Close()
	}
	// Same origin: no CORS headers needed, none sent.
	resp, _ = alice.Call(t, "GET", "/api/jobs", "", "", map[string]string{"Origin": sys.URL})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("same-origin list: %d %v; want 200 without CORS headers", resp.StatusCode, resp.Header)
	}
}

// jobwire.js is served for other origins' pages: CORS for allowed ones,
// an ETag, revalidated at /static/jobwire.js, cached for good at its
// versioned URL (named by Link).
func TestJobwireModuleIsVersionedAndCacheable(t *testing.T) {
	t.Parallel()
	sys := corsSystem(t)
	resp, body := sys.Call(t, "GET", "/static/jobwire.js", "", "", map[string]string{"Origin": appOrigin})
	tag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") ||
		resp.Header.Get("Access-Control-Allow-Origin") != appOrigin || tag == "" || resp.Header.Get("Cache-Control") != "no-cache" ||
		!strings.Contains(string(body), "export function connect") {
		t.Fatalf("GET /static/jobwire.js: %d %v; want the module as JavaScript, CORS for the origin, an ETag, no-cache", resp.StatusCode, resp.Header)
	}
	if resp, _ := sys.Call(t, "GET", "/static/jobwire.js", "", "", map[string]string{"If-None-Match": tag}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET with If-None-Match %s: %d; want 304", tag, resp.StatusCode)
	}
	if resp, _ := sys.Call(t, "GET", "/static/jobwire.js", "", "", map[string]string{"Origin": "https://evil.example"}); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin got Access-Control-Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	m := regexp.MustCompile(`^<(/static/v/([0-9a-f]+)/jobwire\.js)>; rel="canonical"$`).FindStringSubmatch(resp.Header.Get("Link"))
	if m == nil || `"`+m[2]+`"` != tag {
		t.Fatalf("Link %q; want the versioned URL, versioned by the ETag %s", resp.Header.Get("Link"), tag)
	}
	resp, again := sys.Call(t, "GET", m[1], "", "", nil)
	if resp.StatusCode != http.StatusOK || string(again) != string(body) || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("GET %s: %d %v; want the same module, immutable", m[1], resp.StatusCode, resp.Header)
	}
	for _, path := range []string{"/static/v/000000000000000000000000/jobwire.js", "/static/v/" + m[2] + "/job.html", "/static/job.html", "/static/"} {
		if resp, _ := sys.Call(t, "GET", path, "", "", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d; want 404", path, resp.StatusCode)
		}
	}
}

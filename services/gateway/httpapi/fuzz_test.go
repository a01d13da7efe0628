package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jobwire/jobwire/services/gateway/jobops"
	"github.com/jobwire/jobwire/shared/jobs"
)

// The submit decoder never panics and answers every bad body with a 4xx
// API error (jobops' FuzzJSONDepth checks how the input's nesting is
// measured).
func FuzzSubmitDecoder(f *testing.F) {
	for _, seed := range []string{
		`{"type":"demo","input":{"steps":20}}`, `{"type":"demo",`, `[]`, `{"type":"demo"} {}`,
		`{"type":"demo","input":[[[[[[[[[[[[1]]]]]]]]]]]]}`, `{"type":"x","input":"\"[{"}`, `{"type":"demo","extra":1}`,
		strings.Repeat("[", 5000), `{"type":"\u0000*>"}`, "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/api/jobs", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var req jobops.SubmitRequest
		err := decode(httptest.NewRecorder(), r, 4096, &req)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status < 400 || ae.Status > 499 || ae.Message == "" {
				t.Fatalf("decode error %v is not a 4xx API error", err)
			}
			return
		}
	})
}

// Whatever a WebSocket client sends, a job id the server accepts is one
// subject token, and every error message it sends back is valid JSON.
func FuzzClientMessage(f *testing.F) {
	for _, seed := range []string{
		`{"op":"watch","job_id":"01KB3ZQ8V6Y4J8T0B2M1X9C5RH"}`, `{"op":"watch","job_id":"*"}`, `{"op":"watch","job_id":">"}`,
		`{"op":"watch","job_id":"a.b"}`, `{"op":"unwatch","job_id":"a b"}`, `{"op":"watch","job_id":"%2A","after_seq":-1}`,
		`{"op":"watch_all"}`, `{"op":"watch","job_id":"\u00e9"}`, `[`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m clientMessage
		if json.Unmarshal(data, &m) != nil {
			return
		}
		if jobs.ValidateID(m.JobID) == nil {
			subj := jobs.ProgressSubject(m.JobID)
			tokens := strings.Split(subj, ".")
			if len(tokens) != 3 || tokens[1] != m.JobID || strings.ContainsAny(m.JobID, "*> \t\r\n.") {
				t.Fatalf("accepted id %q makes subject %q", m.JobID, subj)
			}
		}
		if frame := errorFrame(m.JobID, errorf(400, "invalid_id", "x")); !json.Valid(frame) {
			t.Fatalf("error frame for %q is not JSON: %q", m.JobID, frame)
		}
	})
}

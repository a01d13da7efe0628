package jobs_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// zone is deliberately not UTC and not a whole hour away from it, so a time
// that is not converted to UTC cannot accidentally look right.
var zone = time.FixedZone("UTC+05:30", 5*3600+30*60)

// at returns a time in zone with every nanosecond digit significant, so a
// truncated fraction shows up in the golden files.
func at(sec int) time.Time {
	return time.Date(2025, time.March, 14, 15, 9, 26+sec, 123456789, zone)
}

func ptr[T any](v T) *T { return &v }

const goldenJobID = "01JPA8ZV9N3Q6T8X2M4K7B5C1D"

// goldenEvents are the representative events whose wire format other
// services parse. The file name is the map key plus ".json".
func goldenEvents() map[string]jobs.Event {
	created, started, ended := at(0), at(1), at(9)
	return map[string]jobs.Event{
		"event_queued": {
			JobID: goldenJobID, Type: "resize-images", Seq: 1,
			Kind: jobs.KindQueued, Status: jobs.StatusQueued,
			Time: created, CreatedAt: &created,
		},
		"event_started": {
			JobID: goldenJobID, Type: "resize-images", Seq: 2,
			Kind: jobs.KindStarted, Status: jobs.StatusRunning,
			Percent: jobs.Percentage(0), Attempt: 1,
			Time: started, CreatedAt: &created, StartedAt: &started,
		},
		"event_progress": {
			JobID: goldenJobID, Type: "resize-images", Seq: 3,
			Kind: jobs.KindProgress, Status: jobs.StatusRunning,
			Percent: jobs.Percentage(42.5), Current: 17, Total: 40,
			Stage: "resize", Message: "resizing image 17 of 40", Attempt: 1,
			Time: at(2), CreatedAt: &created, StartedAt: &started,
		},
		"event_log": {
			JobID: goldenJobID, Type: "resize-images", Seq: 4,
			Kind: jobs.KindLog, Status: jobs.StatusRunning,
			Percent: jobs.Percentage(42.5), Current: 17, Total: 40,
			Stage: "resize", Message: "resizing image 17 of 40",
			Log: "skipped cat.gif: not an image", Attempt: 1,
			Time: at(3), CreatedAt: &created, StartedAt: &started,
		},
		"event_succeeded": {
			JobID: goldenJobID, Type: "resize-images", Seq: 5,
			Kind: jobs.KindSucceeded, Status: jobs.StatusSucceeded,
			Percent: jobs.Percentage(100), Current: 40, Total: 40,
			Stage: "done", Attempt: 1,
			Time: ended, CreatedAt: &created, StartedAt: &started, EndedAt: &ended,
			Result: json.RawMessage(`{"resized": 39, "skipped": ["cat.gif"], "bytes_saved": 1048576}`),
		},
		"event_retrying": {
			JobID: goldenJobID, Type: "resize-images", Seq: 6,
			Kind: jobs.KindRetrying, Status: jobs.StatusQueued,
			Percent: jobs.Percentage(42.5), Current: 17, Total: 40,
			Stage: "resize", Attempt: 1,
			Time: at(4), CreatedAt: &created, StartedAt: &started, NextAttemptAt: ptr(at(6)),
			Error: &jobs.Error{Code: "handler_error", Message: "fetch https://example.com/17.png: connection reset"},
		},
		"event_canceled": {
			JobID: goldenJobID, Type: "resize-images", Seq: 7,
			Kind: jobs.KindCanceled, Status: jobs.StatusCanceled,
			Percent: jobs.Percentage(42.5), Current: 17, Total: 40,
			Stage: "resize", Attempt: 2,
			Time: ended, CreatedAt: &created, StartedAt: &started, EndedAt: &ended,
			Error: jobs.CanceledError(jobs.CancelRequest{By: jobs.CanceledByOwner, Reason: "wrong folder"}),
		},
		"event_queued_retry": {
			JobID: "01JPA9B2C4D6E8F0G1H3J5K7M9", Type: "resize-images", RetryOf: goldenJobID, Seq: 1,
			Kind: jobs.KindQueued, Status: jobs.StatusQueued,
			Time: created, CreatedAt: &created,
		},
		"event_failed": {
			JobID: goldenJobID, Type: "resize-images", Seq: 6,
			Kind: jobs.KindFailed, Status: jobs.StatusFailed,
			Percent: jobs.Percentage(42.5), Current: 17, Total: 40,
			Stage: "resize", Attempt: 3,
			Time: ended, CreatedAt: &created, StartedAt: &started, EndedAt: &ended,
			Error: &jobs.Error{Code: "handler_error", Message: "open /data/17.png: permission denied"},
		},
	}
}

func TestEventGolden(t *testing.T) {
	t.Parallel()
	for name, ev := range goldenEvents() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkGolden(t, name, encode(t, ev))
		})
	}
}

func TestRequestGolden(t *testing.T) {
	t.Parallel()
	req := jobs.Request{
		ID:        goldenJobID,
		Type:      "resize-images",
		Input:     json.RawMessage(`{"urls":["https://example.com/17.png"],"width":640}`),
		CreatedAt: time.Date(2025, time.March, 14, 9, 39, 26, 123456789, time.UTC),
		Owner:     "user:alice",
	}
	checkGolden(t, "request", encode(t, req))
	req.ID, req.RetryOf = "01JPA9B2C4D6E8F0G1H3J5K7M9", goldenJobID
	checkGolden(t, "request_retry", encode(t, req))
}

// TestSnapshotGolden pins the snapshot GET /api/jobs/{id} answers for a
// failed job that was retried: its input, duration and retried_as.
func TestSnapshotGolden(t *testing.T) {
	t.Parallel()
	snap := jobs.SnapshotOf(goldenEvents()["event_failed"])
	snap.Input = json.RawMessage(`{"urls":["https://example.com/17.png"],"width":640}`)
	snap.RetriedAs = "01JPA9B2C4D6E8F0G1H3J5K7M9"
	if snap.DurationMS == nil || *snap.DurationMS != 8000 {
		t.Fatalf("duration_ms = %v, want 8000 (ended - started)", snap.DurationMS)
	}
	checkGolden(t, "snapshot_retried", encode(t, snap))
}

func TestTypeInfoGolden(t *testing.T) {
	t.Parallel()
	info := jobs.TypeInfo{
		Type:         "resize-images",
		Description:  "Resizes images to a given width.",
		ExampleInput: json.RawMessage(`{"urls":["https://example.com/17.png"],"width":640}`),
		InputSchema: json.RawMessage(`{
			"$schema": "https://json-schema.org/draft/2020-12/schema",
			"type": "object",
			"required": ["urls", "width"],
			"properties": {
				"urls": {"type": "array", "items": {"type": "string", "format": "uri"}},
				"width": {"type": "integer", "minimum": 1}
			}
		}`),
	}
	checkGolden(t, "typeinfo", encode(t, info))
}

func TestCancelGolden(t *testing.T) {
	t.Parallel()
	checkGolden(t, "cancel_request", encode(t, jobs.CancelRequest{By: jobs.CanceledByOwner, Reason: "wrong folder"}))
	checkGolden(t, "cancel_reply", encode(t, jobs.CancelReply{Accepted: true}))
	checkGolden(t, "cancel_reply_rejected", encode(t, jobs.CancelReply{}))
}

func TestCanceledError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		req  jobs.CancelRequest
		want jobs.Error
	}{
		{jobs.CancelRequest{By: jobs.CanceledByOwner, Reason: "wrong folder"}, jobs.Error{Code: "canceled", Message: "canceled by its owner: wrong folder"}},
		{jobs.CancelRequest{By: jobs.CanceledByOwner}, jobs.Error{Code: "canceled", Message: "canceled by its owner"}},
		{jobs.CancelRequest{By: jobs.CanceledByAdmin, Reason: "abuse"}, jobs.Error{Code: "canceled", Message: "canceled by an admin: abuse"}},
		// An older gateway's owner id never reaches the user.
		{jobs.CancelRequest{By: "anon:Xq3v9XJr2kHc8uQ4s1mFbA", Reason: "oops"}, jobs.Error{Code: "canceled", Message: "canceled: oops"}},
	} {
		if got := jobs.CanceledError(tc.req); got == nil || *got != tc.want {
			t.Errorf("CanceledError(%+v) = %+v, want %+v", tc.req, got, tc.want)
		}
	}
}

// reencoders decode a golden file into its Go type and encode it again.
var reencoders = map[string]func(*testing.T, []byte) []byte{
	"request":               reencode[jobs.Request],
	"request_retry":         reencode[jobs.Request],
	"snapshot_retried":      reencode[jobs.Snapshot],
	"typeinfo":              reencode[jobs.TypeInfo],
	"cancel_request":        reencode[jobs.CancelRequest],
	"cancel_reply":          reencode[jobs.CancelReply],
	"cancel_reply_rejected": reencode[jobs.CancelReply],
}

func reencode[T any](t *testing.T, data []byte) []byte {
	t.Helper()
	return encode(t, decode[T](t, data))
}

// TestGoldenRoundTrip decodes every golden file into its Go type and
// encodes it again: a consumer that reads and forwards an event must not
// change it.
func TestGoldenRoundTrip(t *testing.T) {
	t.Parallel()
	if *update {
		t.Skip("the golden files are being rewritten")
	}
	codecs := maps.Clone(reencoders)
	for name := range goldenEvents() {
		codecs[name] = reencode[jobs.Event]
	}
	files, err := filepath.Glob(goldenPath("*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(codecs) {
		t.Errorf("testdata/golden has %d files, the tests know %d: remove stale files or add them here", len(files), len(codecs))
	}
	for name, reencode := range codecs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, err := os.ReadFile(goldenPath(name))
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			got := reencode(t, want)
			if !bytes.Equal(got, want) {
				t.Errorf("%s changed after decode and encode:\n%s", goldenPath(name), lineDiff(want, got))
			}
		})
	}
}

// TestEventWireRules checks the rules the golden files are meant to pin,
// independently of their content, so regenerating them with -update
// cannot bless a wrong format.
func TestEventWireRules(t *testing.T) {
	t.Parallel()
	evs := goldenEvents()

	t.Run("times are UTC with nanoseconds", func(t *testing.T) {
		t.Parallel()
		f := fields(t, encode(t, evs["event_succeeded"]))
		for key, want := range map[string]string{
			"time":       `"2025-03-14T09:39:35.123456789Z"`,
			"created_at": `"2025-03-14T09:39:26.123456789Z"`,
			"started_at": `"2025-03-14T09:39:27.123456789Z"`,
			"ended_at":   `"2025-03-14T09:39:35.123456789Z"`,
		} {
			if got := string(f[key]); got != want {
				t.Errorf("%s = %s, want %s", key, got, want)
			}
		}
		f = fields(t, encode(t, evs["event_retrying"]))
		if got, want := string(f["next_attempt_at"]), `"2025-03-14T09:39:32.123456789Z"`; got != want {
			t.Errorf("next_attempt_at = %s, want %s", got, want)
		}
	})

	t.Run("percent 0 is written", func(t *testing.T) {
		t.Parallel()
		f := fields(t, encode(t, evs["event_started"]))
		if got, ok := f["percent"]; !ok || string(got) != "0" {
			t.Errorf(`"percent" = %s (present: %v), want 0`, got, ok)
		}
	})

	t.Run("unset fields are omitted", func(t *testing.T) {
		t.Parallel()
		f := fields(t, encode(t, evs["event_queued"]))
		for _, key := range []string{"percent", "current", "total", "stage", "message", "log", "attempt", "started_at", "ended_at", "next_attempt_at", "result", "error"} {
			if v, ok := f[key]; ok {
				t.Errorf("queued event has %q: %s, want it omitted", key, v)
			}
		}
		for _, key := range []string{"job_id", "type", "seq", "kind", "status", "time", "created_at"} {
			if _, ok := f[key]; !ok {
				t.Errorf("queued event lacks %q", key)
			}
		}
	})

	t.Run("a pointer encodes like the value", func(t *testing.T) {
		t.Parallel()
		ev := evs["event_progress"]
		byPtr, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		byVal, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(byPtr, byVal) {
			t.Errorf("json.Marshal(&ev) = %s\njson.Marshal(ev)  = %s", byPtr, byVal)
		}
	})
}

// encode is the canonical form of the golden files: json.Marshal, indented
// by two spaces, with a final newline.
func encode(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		t.Fatalf("indent %T: %v", v, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
	return v
}

func fields(t *testing.T, data []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func goldenPath(name string) string {
	return filepath.Join("testdata", "golden", name+".json")
}

// checkGolden compares got with the golden file name, or rewrites the file
// when the test runs with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := goldenPath(name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("wire format differs from %s (- golden, + now); if the change is intended, run go test -update and review the diff:\n%s",
			path, lineDiff(want, got))
	}
}

// lineDiff returns a line diff of want and got: lines only in want start
// with "-", lines only in got with "+", common lines with " ".
func lineDiff(want, got []byte) string {
	a := strings.Split(string(want), "\n")
	b := strings.Split(string(got), "\n")
	// lcs[i][j] is the length of the longest common subsequence of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var sb strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			sb.WriteString("  " + a[i] + "\n")
			i++
			j++
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			sb.WriteString("+ " + b[j] + "\n")
			j++
		default:
			sb.WriteString("- " + a[i] + "\n")
			i++
		}
	}
	return sb.String()
}

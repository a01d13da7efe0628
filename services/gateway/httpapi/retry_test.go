package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// retry posts a retry of job id and returns the status code, the answer
// (a snapshot, or an error body) and whether it was a replay.
func retry(t *testing.T, sys *testsys.System, id string) (int, jobs.Snapshot, string, bool) {
	t.Helper()
	resp, b := sys.Call(t, "POST", "/api/jobs/"+id+"/retry", "", "", nil)
	var snap jobs.Snapshot
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if resp.StatusCode == http.StatusAccepted {
		if err := json.Unmarshal(b, &snap); err != nil {
			t.Fatalf("retry %s: %q: %v", id, b, err)
		}
		if loc := resp.Header.Get("Location"); loc != "/api/jobs/"+snap.ID {
			t.Fatalf("retry %s: Location %q, job %s", id, loc, snap.ID)
		}
	} else if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("retry %s: %d %q: %v", id, resp.StatusCode, b, err)
	}
	return resp.StatusCode, snap, e.Error.Code, resp.Header.Get("Idempotent-Replayed") == "true"
}

// requests counts the job requests stored in the jobs stream.
func requests(t *testing.T, sys *testsys.System) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := sys.Streams.Events.Info(ctx, jetstream.WithSubjectFilter(jobs.AllQueue))
	if err != nil {
		t.Fatal(err)
	}
	return len(info.State.Subjects)
}

func sameJSON(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("input %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("input = %s, want %s", gb, wb)
	}
}

func TestRetryFailedJob(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	const input = `{"steps":3,"step_ms":5,"fail_at_step":2}`
	old := sys.Submit(t, "demo", input)
	failed := sys.WaitStatus(t, old.ID, jobs.StatusFailed, 20*time.Second)

	// The owner reads its input, times and duration.
	sameJSON(t, failed.Input, input)
	if failed.CreatedAt == nil || failed.StartedAt == nil || failed.EndedAt == nil || failed.DurationMS == nil {
		t.Fatalf("failed job's times: %+v", failed)
	}
	if want := failed.EndedAt.Sub(*failed.StartedAt).Milliseconds(); *failed.DurationMS != want || want < 5 {
		t.Fatalf("duration_ms = %d, want %d (ended - started, at least one 5 ms step)", *failed.DurationMS, want)
	}
	if failed.RetriedAs != "" || failed.RetryOf != "" {
		t.Fatalf("not retried yet: %+v", failed)
	}

	code, again, _, replayed := retry(t, sys, old.ID)
	if code != http.StatusAccepted || replayed || again.ID == old.ID || again.RetryOf != old.ID || again.Type != "demo" ||
		again.Status != jobs.StatusQueued || again.Seq != 1 {
		t.Fatalf("retry: %d %+v (replayed %v)", code, again, replayed)
	}
	if got, _ := sys.Get(t, old.ID); got.RetriedAs != again.ID || got.Status != jobs.StatusFailed || got.Seq != failed.Seq {
		t.Fatalf("old job after the retry: %+v, want retried_as %s", got, again.ID)
	}
	// The new job runs the same input (and fails the same way), and
	// keeps its link to the old one to the end.
	done := sys.WaitStatus(t, again.ID, jobs.StatusFailed, 20*time.Second)
	if done.RetryOf != old.ID || done.Error == nil || done.Error.Code != "demo_failure" {
		t.Fatalf("retried job: %+v", done)
	}
	sameJSON(t, done.Input, input)

	// A second retry of the old job is the first one, not a new job.
	code, twice, _, replayed := retry(t, sys, old.ID)
	if code != http.StatusAccepted || !replayed || twice.ID != again.ID || twice.Status != jobs.StatusFailed {
		t.Fatalf("second retry: %d %+v (replayed %v), want job %s", code, twice, replayed, again.ID)
	}
	if n := requests(t, sys); n != 2 {
		t.Fatalf("%d jobs stored, want 2", n)
	}
	// The retry can be retried in turn.
	code, third, _, _ := retry(t, sys, again.ID)
	if code != http.StatusAccepted || third.RetryOf != again.ID || third.ID == again.ID || third.ID == old.ID {
		t.Fatalf("retry of the retry: %d %+v", code, third)
	}
}

func TestRetryCanceledJob(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	const input = `{"steps":2,"step_ms":0}`
	old := sys.Submit(t, "demo", input)
	if code, _, ecode, _ := retry(t, sys, old.ID); code != http.StatusConflict || ecode != "not_retryable" {
		t.Fatalf("retry of a queued job: %d %q", code, ecode)
	}
	if code, _ := sys.Cancel(t, old.ID, ""); code != http.StatusAccepted {
		t.Fatalf("cancel: %d", code)
	}
	canceled, _ := sys.Get(t, old.ID)
	if canceled.DurationMS != nil || canceled.StartedAt != nil || canceled.EndedAt == nil || canceled.CreatedAt == nil {
		t.Fatalf("a job canceled before it started has no duration: %+v", canceled)
	}
	sameJSON(t, canceled.Input, input)

	// Retries at once make one new job.
	const n = 6
	ids := make([]string, n)
	var replays int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			code, snap, ecode, replayed := retry(t, sys, old.ID)
			if code != http.StatusAccepted {
				t.Errorf("retry %d: %d %s", i, code, ecode)
			}
			mu.Lock()
			defer mu.Unlock()
			ids[i] = snap.ID
			if replayed {
				replays++
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent retries made different jobs: %v", ids)
		}
	}
	if replays < n-1 {
		t.Fatalf("%d of %d retries were replays, want at least %d", replays, n, n-1)
	}
	if got := requests(t, sys); got != 2 {
		t.Fatalf("%d jobs stored, want 2", got)
	}
	fresh, code := sys.Get(t, ids[0])
	if code != http.StatusOK || fresh.RetryOf != old.ID || fresh.Status != jobs.StatusQueued || fresh.CreatedAt == nil {
		t.Fatalf("new job: %d %+v", code, fresh)
	}
	sameJSON(t, fresh.Input, input)
	if got, _ := sys.Get(t, old.ID); got.RetriedAs != ids[0] {
		t.Fatalf("old job: retried_as %q, want %s", got.RetriedAs, ids[0])
	}
}

// A retry whose record was stored but whose job was not (the gateway went
// away in between) is completed by the next retry, as the recorded job.
func TestRetryCompletesARecordedRetry(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	old := sys.Submit(t, "demo", `{"steps":1}`)
	sys.Cancel(t, old.ID, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	recorded, decided := jobs.NewID(time.Now()), time.Now().Add(-time.Minute)
	if err := jobs.RecordRetry(ctx, sys.JS, old.ID, recorded, decided); err != nil {
		t.Fatal(err)
	}
	if got, _ := sys.Get(t, old.ID); got.RetriedAs != recorded {
		t.Fatalf("retried_as %q, want %s", got.RetriedAs, recorded)
	}
	code, snap, _, _ := retry(t, sys, old.ID)
	if code != http.StatusAccepted || snap.ID != recorded || snap.RetryOf != old.ID || snap.Status != jobs.StatusQueued {
		t.Fatalf("retry: %d %+v, want job %s", code, snap, recorded)
	}
	// Its request is the one the record decided: created when it was
	// written, so every writer of the recorded job stores the same request.
	if snap.CreatedAt == nil || !snap.CreatedAt.Equal(decided) {
		t.Fatalf("created_at %v, want the record's time %v", snap.CreatedAt, decided)
	}
	if err := jobs.RecordRetry(ctx, sys.JS, old.ID, jobs.NewID(time.Now()), time.Now()); !errors.Is(err, jobs.ErrRecorded) {
		t.Fatalf("a second retry record: %v, want ErrRecorded", err)
	}
}

func TestRetryRefused(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	other := sys.As(testsys.Token(t, "someone-else", false, time.Hour))

	running := sys.Submit(t, "demo", `{"steps":10000,"step_ms":10}`)
	sys.WaitStatus(t, running.ID, jobs.StatusRunning, 20*time.Second)
	if code, _, ecode, _ := retry(t, sys, running.ID); code != http.StatusConflict || ecode != "not_retryable" {
		t.Fatalf("retry of a running job: %d %q", code, ecode)
	}
	sys.Cancel(t, running.ID, "")

	ok := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	sys.WaitStatus(t, ok.ID, jobs.StatusSucceeded, 20*time.Second)
	if code, _, ecode, _ := retry(t, sys, ok.ID); code != http.StatusConflict || ecode != "not_retryable" {
		t.Fatalf("retry of a succeeded job: %d %q", code, ecode)
	}

	failed := sys.Submit(t, "demo", `{"steps":1,"step_ms":0,"fail_at_step":1}`)
	sys.WaitStatus(t, failed.ID, jobs.StatusFailed, 20*time.Second)
	if code, _, ecode, _ := retry(t, other, failed.ID); code != http.StatusNotFound || ecode != "not_found" {
		t.Fatalf("retry of another owner's job: %d %q", code, ecode)
	}
	if code, _, ecode, _ := retry(t, sys, jobs.NewID(time.Now())); code != http.StatusNotFound || ecode != "not_found" {
		t.Fatalf("retry of an unknown job: %d %q", code, ecode)
	}
	if code, _, ecode, _ := retry(t, sys, "not.an.id"); code != http.StatusBadRequest || ecode != "invalid_id" {
		t.Fatalf("retry of a bad id: %d %q", code, ecode)
	}
	// Nothing refused left a trace: the failed job is still not retried,
	// and its owner may retry it.
	if got, _ := sys.Get(t, failed.ID); got.RetriedAs != "" {
		t.Fatalf("refused retry left retried_as %q", got.RetriedAs)
	}
	if code, snap, _, _ := retry(t, sys, failed.ID); code != http.StatusAccepted || snap.RetryOf != failed.ID {
		t.Fatalf("owner's retry: %d %+v", code, snap)
	}
	// An admin may retry anyone's job; the new job stays its owner's.
	admin := sys.As(testsys.Token(t, "root", true, time.Hour))
	canceled := sys.Submit(t, "demo", `{"steps":10000,"step_ms":10}`)
	sys.Cancel(t, canceled.ID, "")
	sys.WaitStatus(t, canceled.ID, jobs.StatusCanceled, 20*time.Second)
	code, snap, _, _ := retry(t, admin, canceled.ID)
	if code != http.StatusAccepted {
		t.Fatalf("admin's retry: %d", code)
	}
	if got, code := sys.Get(t, snap.ID); code != http.StatusOK || got.RetryOf != canceled.ID {
		t.Fatalf("the owner reads the admin's retry: %d %+v", code, got)
	}
}

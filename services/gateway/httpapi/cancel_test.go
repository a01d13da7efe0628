package httpapi_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
)

func TestCancelQueuedJobNeverRuns(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	code, got := sys.Cancel(t, snap.ID, `{"reason":"changed my mind"}`)
	if code != http.StatusAccepted || got.Status != jobs.StatusCanceled || got.Error == nil || got.Error.Code != "canceled" ||
		got.Error.Message != "canceled by its owner: changed my mind" {
		t.Fatalf("cancel queued: %d %+v", code, got)
	}
	// A runner that starts now acks the job without running it.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	testsys.StartRunner(t, ctx, &wg, sys.NATS, testsys.Logger(t))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if n, consumers := sys.UnsettledRequests(t); consumers > 0 && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the canceled job's request was never removed from the queue")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if final, _ := sys.Get(t, snap.ID); final.Status != jobs.StatusCanceled || final.Seq != got.Seq {
		t.Fatalf("after a runner saw it: %+v, want canceled at seq %d", final, got.Seq)
	}
}

func TestCancelRunningJob(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	snap := sys.Submit(t, "demo", `{"steps":10000,"step_ms":10}`)
	sys.WaitStatus(t, snap.ID, jobs.StatusRunning, 20*time.Second)
	start := time.Now()
	code, _ := sys.Cancel(t, snap.ID, "")
	if code != http.StatusAccepted {
		t.Fatalf("cancel running: %d", code)
	}
	done := sys.WaitStatus(t, snap.ID, jobs.StatusCanceled, 10*time.Second)
	t.Logf("running job canceled in %v", time.Since(start))
	if done.Error == nil || done.Error.Code != "canceled" || done.Error.Message != "canceled by its owner" || done.EndedAt == nil {
		t.Fatalf("canceled job = %+v", done)
	}
	if done.Percent != nil && *done.Percent >= 100 {
		t.Fatalf("the job ran to the end: %+v", done)
	}
	// Twice is harmless.
	if code, again := sys.Cancel(t, snap.ID, ""); code != http.StatusAccepted || again.Status != jobs.StatusCanceled || again.Seq != done.Seq {
		t.Fatalf("second cancel: %d %+v", code, again)
	}
}

// The message a canceled job shows names a role, never an internal id.
func TestCancelByAnAdminNamesNoID(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	admin := sys.As(testsys.Token(t, "root", true, time.Hour))
	code, got := admin.Cancel(t, snap.ID, `{"reason":"spam"}`)
	if code != http.StatusAccepted || got.Error == nil || got.Error.Message != "canceled by an admin: spam" {
		t.Fatalf("cancel by an admin: %d %+v", code, got.Error)
	}
	// Its owner sees the same, as every watcher would.
	if final, _ := sys.Get(t, snap.ID); final.Error == nil || final.Error.Message != "canceled by an admin: spam" {
		t.Fatalf("the owner sees %+v", final.Error)
	}
}

func TestCancelFinishedOrUnknownJob(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	final := sys.WaitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	var body struct {
		Error jobs.Error    `json:"error"`
		Job   jobs.Snapshot `json:"job"`
	}
	resp := sys.Do(t, "POST", "/api/jobs/"+snap.ID+"/cancel", "", "", nil, &body)
	if resp.StatusCode != http.StatusConflict || body.Error.Code != "already_finished" || body.Job.Status != jobs.StatusSucceeded || body.Job.Seq != final.Seq {
		t.Fatalf("cancel finished: %d %+v", resp.StatusCode, body)
	}
	for path, want := range map[string]int{
		"/api/jobs/" + jobs.NewID(time.Now()) + "/cancel": 404,
		"/api/jobs/%2A/cancel":                            400,
	} {
		if r := sys.Do(t, "POST", path, "", "", nil, nil); r.StatusCode != want {
			t.Errorf("POST %s: %d, want %d", path, r.StatusCode, want)
		}
	}
	if r := sys.Do(t, "POST", "/api/jobs/"+snap.ID+"/cancel", "application/json", `{"reason":`, nil, nil); r.StatusCode != 400 {
		t.Errorf("malformed cancel body: %d", r.StatusCode)
	}
}

// A cancel sent to one gateway reaches the runner of a job submitted
// through another: everything goes through NATS.
func TestCancelThroughAnotherGateway(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	other := testsys.StartOn(t, sys.NATS, testsys.WithoutRunner()).SameCaller(sys)
	snap := sys.Submit(t, "demo", `{"steps":10000,"step_ms":10}`)
	other.WaitStatus(t, snap.ID, jobs.StatusRunning, 20*time.Second)
	if code, _ := other.Cancel(t, snap.ID, ""); code != http.StatusAccepted {
		t.Fatalf("cancel: %d", code)
	}
	sys.WaitStatus(t, snap.ID, jobs.StatusCanceled, 10*time.Second)
}

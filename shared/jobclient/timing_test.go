package jobclient_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobclient"
	"github.com/jobwire/jobwire/shared/jobs"
)

// A job submitted from Go with a delay is "scheduled" until then; the
// gateways' timers queue it when due (a gateway must run somewhere).
func TestSubmitDelayed(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	c := newClient(t, natstest.Connect(t, sys.NATS))
	ctx := testContext(t, 30*time.Second)
	ev, err := c.Submit(ctx, "demo", map[string]any{"steps": 1, "step_ms": 1}, jobclient.Delay(400*time.Millisecond), jobclient.ExpiresAt(time.Now().Add(time.Minute)))
	if err != nil || ev.Kind != jobs.KindScheduled || ev.RunAt == nil {
		t.Fatalf("submit: %+v, %v", ev, err)
	}
	var kinds []jobs.Kind
	for e, err := range c.Watch(ctx, ev.JobID, 0) {
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, e.Kind)
		if e.Status.Terminal() {
			if e.Status != jobs.StatusSucceeded || e.StartedAt.Before(*ev.RunAt) {
				t.Fatalf("ended %s, started %v, due %v", e.Status, e.StartedAt, ev.RunAt)
			}
			break
		}
	}
	if len(kinds) < 4 || kinds[0] != jobs.KindScheduled || kinds[1] != jobs.KindQueued {
		t.Fatalf("events: %v", kinds)
	}

	for _, opts := range [][]jobclient.SubmitOption{
		{jobclient.Delay(-time.Second)},
		{jobclient.RunAt(time.Now().Add(-time.Hour))},
		{jobclient.RunAt(time.Now().Add(time.Hour)), jobclient.Delay(time.Second)},
		{jobclient.Delay(time.Hour), jobclient.ExpiresAt(time.Now().Add(time.Minute))},
		{jobclient.Priority(5)},
	} {
		if _, err := c.Submit(ctx, "demo", map[string]any{"steps": 1}, opts...); !errors.Is(err, jobclient.ErrInvalidInput) {
			t.Errorf("bad options: %v, want ErrInvalidInput", err)
		}
	}
}

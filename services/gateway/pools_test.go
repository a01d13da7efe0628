package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
)

// Runner pools serve different job types from one stream; a type belongs
// to one pool, and a runner that would overlap another pool cannot start.
func TestRunnerPoolsServeTheirOwnTypes(t *testing.T) {
	t.Parallel()
	sys := startSystem(t, withoutRunner())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	var mu sync.Mutex
	ranBy := map[string]string{}
	named := func(typ, pool string) worker.JobType {
		return worker.JobType{Name: typ, Description: typ, Handler: func(ctx context.Context, job *worker.Job) (any, error) {
			mu.Lock()
			ranBy[job.ID] = pool
			mu.Unlock()
			return nil, nil
		}}
	}
	start := func(types ...worker.JobType) error {
		r, err := worker.New(ctx, natstest.Connect(t, sys.NATS), worker.Config{Logger: testLogger(t)}, types...)
		if err != nil {
			return err
		}
		wg.Go(func() { _ = r.Run(ctx) })
		return nil
	}
	if err := start(named("images", "A"), named("video", "A")); err != nil {
		t.Fatal(err)
	}
	if err := start(named("mail", "B")); err != nil {
		t.Fatal(err)
	}
	if err := start(named("mail", "B")); err != nil {
		t.Fatalf("a second runner of the same pool: %v", err)
	}
	err := start(named("mail", "C"), named("images", "C"))
	if err == nil || !strings.Contains(err.Error(), "same types") {
		t.Fatalf("an overlapping pool started: %v", err)
	}

	want := map[string]string{}
	for typ, pool := range map[string]string{"images": "A", "video": "A", "mail": "B"} {
		for range 3 {
			want[sys.submit(t, typ, `{}`).ID] = pool
		}
	}
	for id, pool := range want {
		sys.waitStatus(t, id, jobs.StatusSucceeded, 20*time.Second)
		mu.Lock()
		got := ranBy[id]
		mu.Unlock()
		if got != pool {
			t.Errorf("job %s ran in pool %q, want %q", id, got, pool)
		}
	}
}

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

// Runner pools serve different job types from one stream; a job runs only
// on a runner that serves its type. Pools may overlap (as in a rolling
// update that adds or removes types): a type's jobs then go to any runner
// serving it.
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
	if err := start(named("mail", "C"), named("images", "C")); err != nil {
		t.Fatalf("a pool overlapping others: %v", err)
	}

	want := map[string]string{}
	for typ, pools := range map[string]string{"images": "AC", "video": "A", "mail": "BC"} {
		for range 3 {
			want[sys.submit(t, typ, `{}`).ID] = pools
		}
	}
	for id, pools := range want {
		sys.waitStatus(t, id, jobs.StatusSucceeded, 20*time.Second)
		mu.Lock()
		got := ranBy[id]
		mu.Unlock()
		if got == "" || !strings.Contains(pools, got) {
			t.Errorf("job %s ran in pool %q, want one of %q", id, got, pools)
		}
	}
}

package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// An R1 deployment on a 3-node cluster switched to JETSTREAM_REPLICAS=3
// converges when a runner with the new setting starts: every stream and
// bucket is updated in place to R3, and the runners' durable consumer is
// scaled to R3 with its state, so the jobs in flight and those waiting
// are neither lost nor run again. Then the consumer survives the loss of
// the node that leads it (an R1 consumer would be stranded, its jobs
// queued for ever).
func TestReplicasConvergeFromR1WithoutLosingOrRerunningJobs(t *testing.T) {
	c := natstest.Cluster(t, 3)
	e := newClusterEnv(t, c)

	var mu sync.Mutex
	runs := map[string]int{}
	release := make(chan struct{})
	block := jobType("block", func(ctx context.Context, job *Job) (any, error) {
		mu.Lock()
		runs[job.ID]++
		mu.Unlock()
		select {
		case <-release:
			return "ok", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	running := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(runs)
	}
	r1 := Config{Concurrency: 2, AckWait: 5 * time.Second, ShutdownGrace: time.Second, Topology: jobs.Topology{Replicas: 1}}
	e.startRunner(r1, block)
	var ids []string
	for range 5 {
		ids = append(ids, e.submit("block", ""))
	}
	e.eventually("2 jobs running at R1", func() (bool, string) { return running() == 2, fmt.Sprint(running()) })
	e.eventually("3 jobs waiting", func() (bool, string) {
		q := e.queueState()
		return q.ackPending == 2 && q.pending == 3, q.String()
	})

	start := time.Now()
	r3 := r1
	r3.Topology.Replicas = 3
	e.startRunner(r3, block) // waits for the streams to scale up, then scales the consumer
	t.Logf("runner with JETSTREAM_REPLICAS=3 started %v after the change (streams scaled from R1)", time.Since(start).Round(100*time.Millisecond))

	info, err := e.consumer()
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 {
		t.Fatalf("consumer replicas %d, want 3", info.Config.Replicas)
	}
	// Nothing the R1 consumer held is lost: the two jobs in flight are
	// still in flight, and the rest wait or run on the new runner.
	if n := info.NumAckPending + int(info.NumPending); n != 5 || info.NumAckPending < 2 {
		t.Fatalf("consumer after the update: %d in flight, %d waiting; want the 5 jobs, 2+ in flight", info.NumAckPending, info.NumPending)
	}
	for _, name := range []string{jobs.Stream, jobs.RecordsStream, "KV_" + jobs.TypesBucket, "KV_" + jobs.IdempotencyBucket} {
		s, err := e.js.Stream(e.ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Replicas; got != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, got)
		}
	}

	close(release)
	for _, id := range ids {
		if ev := e.waitEnded(id); ev.Status != jobs.StatusSucceeded {
			t.Errorf("job %s ended %s", id, ev.Status)
		}
	}
	mu.Lock()
	for _, id := range ids {
		if runs[id] != 1 {
			t.Errorf("job %s ran %d times, want once", id, runs[id])
		}
	}
	mu.Unlock()

	// The consumer now has a copy on every node: losing its leader does
	// not strand the queue.
	c.WaitStreamCurrent(e.js, jobs.Stream, waitTimeout)
	leader := consumerLeader(t, e)
	c.Stop(leader)
	// The node may have led the streams a submit writes to as well: a
	// write sent while a stream has no leader waits for an answer that
	// never comes, so submit once both have one again.
	c.StreamLeader(e.js, jobs.Stream)
	after := e.submit("block", "")
	if ev := e.waitEnded(after); ev.Status != jobs.StatusSucceeded {
		t.Errorf("job submitted after the consumer's leader %s died ended %s", c.Name(leader), ev.Status)
	}
}

// newClusterEnv is newEnv on the nodes of c, with R1 streams (as a
// deployment from before JETSTREAM_REPLICAS had them).
func newClusterEnv(t *testing.T, c *natstest.ClusterNATS) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	nc := natstest.ConnectURL(t, c.URLs())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, urls: c.URLs(), nc: nc, js: js}
	streams, err := jobs.Topology{Replicas: 1}.CreateOrUpdate(ctx, js)
	if err != nil {
		t.Fatalf("create topology: %v", err)
	}
	e.queue, e.events = streams.Events, streams.Events
	return e
}

// consumerLeader is the node that leads the runners' consumer once all
// its replicas are current.
func consumerLeader(t *testing.T, e *env) int {
	t.Helper()
	leader := ""
	e.eventually("every replica of the consumer current", func() (bool, string) {
		info, err := e.consumer()
		if err != nil {
			return false, err.Error()
		}
		cl := info.Cluster
		if cl == nil || cl.Leader == "" || len(cl.Replicas) != 2 {
			return false, fmt.Sprintf("%+v", cl)
		}
		for _, r := range cl.Replicas {
			if !r.Current || r.Offline {
				return false, fmt.Sprintf("replica %s current %v offline %v", r.Name, r.Current, r.Offline)
			}
		}
		leader = cl.Leader
		return true, ""
	})
	var n int
	if _, err := fmt.Sscanf(leader, "n%d", &n); err != nil {
		t.Fatalf("leader %q: %v", leader, err)
	}
	return n
}

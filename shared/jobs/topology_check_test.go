package jobs_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// Check finds every missing or different stream and bucket at once, names
// jobwire-setup as the fix, never creates or changes one, and once the
// topology matches returns handles that work as CreateOrUpdate's do.
func TestTopologyCheck(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := natstest.Server(t)
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	problems := func(topo jobs.Topology) []string {
		t.Helper()
		streams, err := topo.Check(ctx, js)
		var te *jobs.TopologyError
		if !errors.As(err, &te) || streams != nil {
			t.Fatalf("Check: %v (streams %v), want a *TopologyError", err, streams)
		}
		if !strings.Contains(err.Error(), "jobwire-setup") {
			t.Errorf("the error does not name the fix: %v", err)
		}
		var got []string
		for _, p := range te.Problems {
			got = append(got, p.String())
		}
		return got
	}
	streamCount := func() int {
		t.Helper()
		n := 0
		for range js.StreamNames(ctx).Name() {
			n++
		}
		return n
	}

	// Nothing there: every one is reported, and nothing is created.
	want := []string{
		"stream JOBS is missing", "stream JOBS_RECORDS is missing",
		"stream JOBS_INDEX is missing", "stream JOBS_COUNTS is missing", "stream JOBS_MINUTES is missing", "stream JOBS_TIMERS is missing",
		"bucket JOBWIRE_TYPES is missing", "bucket JOBWIRE_IDEMPOTENCY is missing",
	}
	if got := problems(jobs.Topology{}); !slices.Equal(got, want) {
		t.Fatalf("problems on an empty server:\n%q\nwant\n%q", got, want)
	}
	if n := streamCount(); n != 0 {
		t.Fatalf("Check created %d streams", n)
	}

	// Made with other retention settings: the differences, all of them.
	if _, err := (jobs.Topology{EventsMaxAge: time.Hour, IdempotencyTTL: time.Hour}).CreateOrUpdate(ctx, js); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"stream JOBS: max_age is 1h0m0s, want 168h0m0s",
		"stream JOBS_RECORDS: max_age is 721h0m0s, want 888h0m0s",
		"stream JOBS_INDEX: max_age is 1h0m0s, want 168h0m0s",
		"stream JOBS_TIMERS: max_age is 1h0m0s, want 168h0m0s",
		"bucket JOBWIRE_IDEMPOTENCY: max_age is 1h0m0s, want 24h0m0s",
	}
	if got := problems(jobs.Topology{}); !slices.Equal(got, want) {
		t.Fatalf("problems with other settings:\n%q\nwant\n%q", got, want)
	}

	// A stream made by hand that jobwire cannot work with.
	if err := js.DeleteStream(ctx, jobs.Stream); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: jobs.Stream, Subjects: []string{"jobwire.events.>"}, Storage: jetstream.MemoryStorage, MaxBytes: 1 << 20,
	}); err != nil {
		t.Fatal(err)
	}
	got := problems(jobs.Topology{EventsMaxAge: time.Hour, IdempotencyTTL: time.Hour})
	if len(got) != 1 {
		t.Fatalf("problems: %q, want the jobs stream's only", got)
	}
	for _, diff := range []string{
		"subjects is [jobwire.events.>], want [jobwire.queue.*.* jobwire.queue-high.*.* jobwire.queue-low.*.* jobwire.sched.*.* jobwire.events.*.*]", "storage is Memory, want File", "max_age is 0s, want 1h0m0s",
		"allow_direct is false, want true", "max_bytes is 1048576, want no limit", "max_msgs_per_subject is -1, want 10000",
		"republish is none, want jobwire.*.*.* to jobs.{{wildcard(3)}}.progress",
	} {
		if !strings.Contains(got[0], diff) {
			t.Errorf("problem %q does not say %q", got[0], diff)
		}
	}

	// Made as asked: the handles work.
	topo := jobs.Topology{EventsMaxAge: 2 * time.Hour}
	if err := js.DeleteStream(ctx, jobs.Stream); err != nil {
		t.Fatal(err)
	}
	// The first layout (a work-queue JOBS) is refused, by both.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: jobs.Stream, Subjects: []string{"jobwire.queue.>"}, Retention: jetstream.WorkQueuePolicy,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := topo.CreateOrUpdate(ctx, js); !errors.Is(err, jobs.ErrOldLayout) {
		t.Fatalf("CreateOrUpdate over the first layout: %v, want ErrOldLayout", err)
	}
	if _, err := topo.Check(ctx, js); !errors.Is(err, jobs.ErrOldLayout) {
		t.Fatalf("Check of the first layout: %v, want ErrOldLayout", err)
	}
	if err := js.DeleteStream(ctx, jobs.Stream); err != nil {
		t.Fatal(err)
	}
	if _, err := topo.CreateOrUpdate(ctx, js); err != nil {
		t.Fatal(err)
	}
	streams, err := topo.Check(ctx, js)
	if err != nil {
		t.Fatalf("Check after CreateOrUpdate with the same settings: %v", err)
	}
	id := jobs.NewID(time.Now())
	if _, err := jobs.Enqueue(ctx, js, jobs.Request{ID: id, Type: "demo", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := jobs.LastEvent(ctx, streams.Events, id); err != nil {
		t.Fatalf("LastEvent through Check's handle: %v", err)
	}
	if _, err := streams.Types.Put(ctx, "demo", []byte(`{}`)); err != nil {
		t.Fatalf("put through Check's types bucket: %v", err)
	}
	for name, got := range map[string]string{
		jobs.Stream:            streams.Events.CachedInfo().Config.Name,
		jobs.RecordsStream:     streams.Records.CachedInfo().Config.Name,
		jobs.IdempotencyBucket: streams.Idempotency.Bucket(),
	} {
		if got != name {
			t.Errorf("handle for %s is %s", name, got)
		}
	}
}

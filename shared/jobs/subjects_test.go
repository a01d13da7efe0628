package jobs_test

import (
	"slices"
	"testing"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

func TestSubjects(t *testing.T) {
	t.Parallel()
	const id = "01JPA8ZV9N3Q6T8X2M4K7B5C1D"
	for _, tc := range []struct{ got, want string }{
		{jobs.ProgressSubject(id), "jobs.01JPA8ZV9N3Q6T8X2M4K7B5C1D.progress"},
		{jobs.CancelSubject(id), "jobs.01JPA8ZV9N3Q6T8X2M4K7B5C1D.cancel"},
		{jobs.QueueSubject("resize-images", id), "jobwire.queue.resize-images.01JPA8ZV9N3Q6T8X2M4K7B5C1D"},
		{jobs.EventSubject("resize-images", id), "jobwire.events.resize-images.01JPA8ZV9N3Q6T8X2M4K7B5C1D"},
		{jobs.QueueFilter("resize-images"), "jobwire.queue.resize-images.*"},
		{jobs.JobSubjects(id), "jobwire.*.*.01JPA8ZV9N3Q6T8X2M4K7B5C1D"},
		{jobs.AllProgress, "jobs.*.progress"},
		{jobs.AllQueue, "jobwire.queue.*.*"},
		{jobs.AllCancel, "jobs.*.cancel"},
	} {
		if tc.got != tc.want {
			t.Errorf("subject = %q, want %q", tc.got, tc.want)
		}
	}
	for _, s := range []string{jobs.ProgressSubject(id), jobs.CancelSubject(id), jobs.QueueSubject("resize-images", id), jobs.EventSubject("resize-images", id)} {
		if !server.IsValidLiteralSubject(s) {
			t.Errorf("%q is not a valid literal subject", s)
		}
	}
	for _, s := range []string{jobs.QueueSubject("resize-images", id), jobs.EventSubject("resize-images", id)} {
		if typ, got, ok := jobs.JobOfSubject(s); !ok || typ != "resize-images" || got != id {
			t.Errorf("JobOfSubject(%q) = %q, %q, %v", s, typ, got, ok)
		}
		if !server.SubjectsCollide(s, jobs.JobSubjects(id)) || server.SubjectsCollide(s, jobs.JobSubjects("other")) {
			t.Errorf("%q is not exactly among job %s's subjects", s, id)
		}
	}
	for _, s := range []string{"jobwire.queue.a", "jobwire.queue.a.b.c", "jobwire.events.a.b*", "jobwire.ends.a.b", "jobs.a.progress"} {
		if _, _, ok := jobs.JobOfSubject(s); ok {
			t.Errorf("JobOfSubject(%q) is ok", s)
		}
	}
}

func TestIDFromProgressSubject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		subject string
		id      string
		ok      bool
	}{
		{"jobs.01JPA8ZV9N3Q6T8X2M4K7B5C1D.progress", "01JPA8ZV9N3Q6T8X2M4K7B5C1D", true},
		{"jobs.progress.progress", "progress", true},
		{"jobs.*.progress", "", false},
		{"jobs.>.progress", "", false},
		{"jobs.a.b.progress", "", false},
		{"jobs..progress", "", false},
		{"jobs.a.cancel", "", false},
		{"jobwire.queue.a", "", false},
		{"jobs.a.progress.x", "", false},
		{"xjobs.a.progress", "", false},
	} {
		id, ok := jobs.IDFromProgressSubject(tc.subject)
		if id != tc.id || ok != tc.ok {
			t.Errorf("IDFromProgressSubject(%q) = %q, %v; want %q, %v", tc.subject, id, ok, tc.id, tc.ok)
		}
	}
}

func TestIDFromCancelSubject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		subject string
		id      string
		ok      bool
	}{
		{"jobs.01JPA8ZV9N3Q6T8X2M4K7B5C1D.cancel", "01JPA8ZV9N3Q6T8X2M4K7B5C1D", true},
		{"jobs.cancel.cancel", "cancel", true},
		{"jobs.*.cancel", "", false},
		{"jobs.>.cancel", "", false},
		{"jobs.a.b.cancel", "", false},
		{"jobs..cancel", "", false},
		{"jobs.a.progress", "", false},
		{"jobs.a.cancel.x", "", false},
	} {
		id, ok := jobs.IDFromCancelSubject(tc.subject)
		if id != tc.id || ok != tc.ok {
			t.Errorf("IDFromCancelSubject(%q) = %q, %v; want %q, %v", tc.subject, id, ok, tc.id, tc.ok)
		}
	}
	for _, id := range validIDs() {
		if got, ok := jobs.IDFromCancelSubject(jobs.CancelSubject(id)); !ok || got != id {
			t.Errorf("IDFromCancelSubject(CancelSubject(%q)) = %q, %v", id, got, ok)
		}
	}
}

// TestOnlyProgressMatchesAllProgress: `nats sub 'jobs.*.progress'` must
// show job events and nothing else the system sends.
func TestOnlyProgressMatchesAllProgress(t *testing.T) {
	t.Parallel()
	// The matcher must be able to say yes, or the negative checks below
	// prove nothing.
	if !server.SubjectsCollide(jobs.AllProgress, jobs.ProgressSubject("a")) {
		t.Fatalf("%q does not match %q", jobs.AllProgress, jobs.ProgressSubject("a"))
	}
	// Ids and types that look like the other tokens of the wildcard.
	names := append(validIDs(), "jobs", "progress", "queue", "jobwire", "cancel")
	for _, name := range names {
		if err := jobs.ValidateType(name); err != nil {
			t.Fatalf("test name %q is not a valid type: %v", name, err)
		}
		for _, s := range []string{jobs.QueueSubject(name, name), jobs.EventSubject(name, name), jobs.CancelSubject(name)} {
			if server.SubjectsCollide(s, jobs.AllProgress) {
				t.Errorf("%q matches %q", s, jobs.AllProgress)
			}
		}
		if !server.SubjectsCollide(jobs.ProgressSubject(name), jobs.AllProgress) {
			t.Errorf("%q does not match %q", jobs.ProgressSubject(name), jobs.AllProgress)
		}
		if !server.SubjectsCollide(jobs.QueueSubject(name, name), jobs.AllQueue) {
			t.Errorf("%q is not captured by %q", jobs.QueueSubject(name, name), jobs.AllQueue)
		}
		if server.SubjectsCollide(jobs.ProgressSubject(name), jobs.AllQueue) {
			t.Errorf("%q is captured by the queue stream's %q", jobs.ProgressSubject(name), jobs.AllQueue)
		}
	}
	// Not a single queue or cancel subject, whatever its type or id: the
	// whole wildcards.
	for _, w := range []string{jobs.AllQueue, jobs.AllCancel} {
		if server.SubjectsCollide(w, jobs.AllProgress) {
			t.Errorf("%q and %q overlap", w, jobs.AllProgress)
		}
	}
	if server.SubjectsCollide(jobs.AllCancel, jobs.AllQueue) {
		t.Errorf("%q and %q overlap", jobs.AllCancel, jobs.AllQueue)
	}
	if !server.SubjectsCollide(jobs.AllCancel, jobs.CancelSubject("a")) {
		t.Errorf("%q does not match %q", jobs.AllCancel, jobs.CancelSubject("a"))
	}
	// A watcher of one job never gets another job's events.
	if server.SubjectsCollide(jobs.ProgressSubject("a"), jobs.ProgressSubject("b")) {
		t.Error("progress subjects of different jobs overlap")
	}
}

func TestStreamsDoNotOverlap(t *testing.T) {
	t.Parallel()
	for _, topo := range []jobs.Topology{{}, {Replicas: 3, EventsMaxPerJob: 5}} {
		j, r := topo.StreamConfig(), topo.RecordsStreamConfig()
		if j.Name == r.Name {
			t.Fatalf("both streams are named %q", j.Name)
		}
		for _, js := range j.Subjects {
			for _, rs := range r.Subjects {
				if server.SubjectsCollide(js, rs) {
					t.Errorf("jobs stream subject %q overlaps records stream subject %q", js, rs)
				}
			}
		}
		for _, s := range []string{jobs.QueueSubject("a", "b"), jobs.EventSubject("a", "b")} {
			if !slices.ContainsFunc(j.Subjects, func(js string) bool { return server.SubjectsCollide(js, s) }) {
				t.Errorf("jobs stream subjects %q do not capture %q", j.Subjects, s)
			}
			if !server.SubjectsCollide(jobs.AllJobs, s) {
				t.Errorf("%q is not republished", s)
			}
		}
		// It republishes what it stored on the progress subjects, which it
		// must not capture itself (that would be a loop).
		for _, s := range append(j.Subjects, r.Subjects...) {
			if server.SubjectsCollide(s, jobs.AllProgress) || server.SubjectsCollide(s, jobs.AllCancel) {
				t.Errorf("stream subject %q captures progress or cancel subjects", s)
			}
		}
		if j.RePublish == nil || j.RePublish.Source != jobs.AllJobs || j.RePublish.HeadersOnly {
			t.Errorf("jobs stream republish = %+v, want every stored message with its body", j.RePublish)
		}
		if j.Retention != jetstream.LimitsPolicy {
			t.Errorf("jobs stream retention %v: a request must stay after its ack, as its job's first event", j.Retention)
		}
	}
}

func TestTopologyDefaults(t *testing.T) {
	t.Parallel()
	e := jobs.Topology{}.StreamConfig()
	if e.Name != jobs.Stream {
		t.Errorf("stream name %q; want %q", e.Name, jobs.Stream)
	}
	if e.Replicas != 1 {
		t.Errorf("replicas %d; want 1", e.Replicas)
	}
	if e.MaxAge != jobs.DefaultEventsMaxAge || e.MaxMsgsPerSubject != jobs.DefaultEventsMaxPerJob {
		t.Errorf("events MaxAge %v, MaxMsgsPerSubject %d; want %v, %d",
			e.MaxAge, e.MaxMsgsPerSubject, jobs.DefaultEventsMaxAge, jobs.DefaultEventsMaxPerJob)
	}
	if !e.AllowDirect {
		t.Error("jobs stream does not allow direct get")
	}
}

func TestPercentage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want float64 }{
		{-5, 0}, {0, 0}, {42.5, 42.5}, {100, 100}, {250, 100},
	} {
		if got := jobs.Percentage(tc.in); got == nil || *got != tc.want {
			t.Errorf("Percentage(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

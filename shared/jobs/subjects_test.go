package jobs_test

import (
	"testing"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats-server/v2/server"
)

func TestSubjects(t *testing.T) {
	t.Parallel()
	const id = "01JPA8ZV9N3Q6T8X2M4K7B5C1D"
	for _, tc := range []struct{ got, want string }{
		{jobs.ProgressSubject(id), "jobs.01JPA8ZV9N3Q6T8X2M4K7B5C1D.progress"},
		{jobs.CancelSubject(id), "jobs.01JPA8ZV9N3Q6T8X2M4K7B5C1D.cancel"},
		{jobs.QueueSubject("resize-images"), "jobwire.queue.resize-images"},
		{jobs.AllProgress, "jobs.*.progress"},
		{jobs.AllQueue, "jobwire.queue.>"},
		{jobs.AllCancel, "jobs.*.cancel"},
	} {
		if tc.got != tc.want {
			t.Errorf("subject = %q, want %q", tc.got, tc.want)
		}
	}
	for _, s := range []string{jobs.ProgressSubject(id), jobs.CancelSubject(id), jobs.QueueSubject("resize-images")} {
		if !server.IsValidLiteralSubject(s) {
			t.Errorf("%q is not a valid literal subject", s)
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

func TestTypeFromQueueSubject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		subject, typ string
		ok           bool
	}{
		{jobs.QueueSubject("demo"), "demo", true},
		{"jobwire.queue.resize_v2", "resize_v2", true},
		{"jobwire.queue.", "", false},
		{"jobwire.queue.a.b", "", false},
		{"jobwire.queue.*", "", false},
		{"jobwire.events.demo", "", false},
	} {
		typ, ok := jobs.TypeFromQueueSubject(tc.subject)
		if typ != tc.typ || ok != tc.ok {
			t.Errorf("TypeFromQueueSubject(%q) = %q, %v; want %q, %v", tc.subject, typ, ok, tc.typ, tc.ok)
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
		for _, s := range []string{jobs.QueueSubject(name), jobs.CancelSubject(name)} {
			if server.SubjectsCollide(s, jobs.AllProgress) {
				t.Errorf("%q matches %q", s, jobs.AllProgress)
			}
		}
		if !server.SubjectsCollide(jobs.ProgressSubject(name), jobs.AllProgress) {
			t.Errorf("%q does not match %q", jobs.ProgressSubject(name), jobs.AllProgress)
		}
		if !server.SubjectsCollide(jobs.QueueSubject(name), jobs.AllQueue) {
			t.Errorf("%q is not captured by %q", jobs.QueueSubject(name), jobs.AllQueue)
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
		q, e := topo.QueueStreamConfig(), topo.EventsStreamConfig()
		if q.Name == e.Name {
			t.Fatalf("both streams are named %q", q.Name)
		}
		if len(q.Subjects) == 0 || len(e.Subjects) == 0 {
			t.Fatalf("a stream has no subjects: queue %q, events %q", q.Subjects, e.Subjects)
		}
		for _, qs := range q.Subjects {
			for _, es := range e.Subjects {
				if server.SubjectsCollide(qs, es) {
					t.Errorf("queue stream subject %q overlaps events stream subject %q", qs, es)
				}
			}
		}
		if !server.SubjectsCollide(e.Subjects[0], jobs.EventSubject("a")) {
			t.Errorf("events stream subjects %q do not capture events", e.Subjects)
		}
		// It republishes what it stored on the progress subjects, which it
		// must not capture itself (that would be a loop).
		if server.SubjectsCollide(e.Subjects[0], jobs.AllProgress) || server.SubjectsCollide(q.Subjects[0], jobs.AllProgress) {
			t.Errorf("a stream captures %q", jobs.AllProgress)
		}
		if e.RePublish == nil || e.RePublish.Source != jobs.AllEvents || e.RePublish.HeadersOnly {
			t.Errorf("events stream republish = %+v, want every stored event with its body", e.RePublish)
		}
		if !server.SubjectsCollide(q.Subjects[0], jobs.QueueSubject("a")) {
			t.Errorf("queue stream subjects %q do not capture requests", q.Subjects)
		}
		for _, s := range append(q.Subjects, e.Subjects...) {
			if server.SubjectsCollide(s, jobs.AllCancel) {
				t.Errorf("stream subject %q captures cancel requests", s)
			}
		}
	}
}

func TestTopologyDefaults(t *testing.T) {
	t.Parallel()
	q, e := jobs.Topology{}.QueueStreamConfig(), jobs.Topology{}.EventsStreamConfig()
	if q.Name != jobs.QueueStream || e.Name != jobs.EventsStream {
		t.Errorf("stream names %q, %q; want %q, %q", q.Name, e.Name, jobs.QueueStream, jobs.EventsStream)
	}
	if q.Replicas != 1 || e.Replicas != 1 {
		t.Errorf("replicas %d, %d; want 1", q.Replicas, e.Replicas)
	}
	if e.MaxAge != jobs.DefaultEventsMaxAge || e.MaxMsgsPerSubject != jobs.DefaultEventsMaxPerJob {
		t.Errorf("events MaxAge %v, MaxMsgsPerSubject %d; want %v, %d",
			e.MaxAge, e.MaxMsgsPerSubject, jobs.DefaultEventsMaxAge, jobs.DefaultEventsMaxPerJob)
	}
	if !e.AllowDirect {
		t.Error("events stream does not allow direct get")
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

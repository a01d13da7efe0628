package natsperm_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/services/runner/jobtypes"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// The gateway and runner users may look the streams up (the check of
// TOPOLOGY=check) but neither create nor change one: not loosen
// JOBS_RECORDS' limits, not make a stream of their own. jobs.Topology's
// CreateOrUpdate fails for them; the streams stay as the set-up made them.
func TestServicesCannotCreateOrChangeStreams(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	setUpTopology(t, s)
	loose := jobs.Topology{}.RecordsStreamConfig()
	loose.DenyPurge, loose.MaxAge = false, time.Minute
	for _, user := range []string{"gateway", "runner"} {
		c, js := jetStreamAs(t, s, user)
		if _, err := (jobs.Topology{}).Check(testContext(t, 5*time.Second), js); err != nil {
			t.Fatalf("Check as %s: %v", user, err)
		}
		c.errs.none(t, user)

		if _, err := (jobs.Topology{EventsMaxAge: time.Hour}).CreateOrUpdate(testContext(t, 500*time.Millisecond), js); err == nil {
			t.Fatalf("CreateOrUpdate as %s succeeded", user)
		}
		c.errs.violation(t, "publish", "$JS.API.STREAM.UPDATE.JOBS")
		if _, err := js.UpdateStream(testContext(t, 500*time.Millisecond), loose); err == nil {
			t.Fatalf("%s loosened %s", user, jobs.RecordsStream)
		}
		c.errs.violation(t, "publish", "$JS.API.STREAM.UPDATE.JOBS_RECORDS")
		for _, name := range []string{jobs.Stream, jobs.RecordsStream, "KV_" + jobs.TypesBucket, "KV_" + jobs.IdempotencyBucket, "MINE"} {
			subject := "$JS.API.STREAM.CREATE." + name
			if _, err := c.Request(subject, []byte(`{"name":"`+name+`","subjects":["mine.>"]}`), 200*time.Millisecond); err == nil {
				t.Fatalf("%s: request on %s was answered", user, subject)
			}
			c.errs.violation(t, "publish", subject)
		}
		if _, err := js.CreateKeyValue(testContext(t, 500*time.Millisecond), jetstream.KeyValueConfig{Bucket: "MINE"}); err == nil {
			t.Fatalf("%s created a bucket", user)
		}
	}
	// What the set-up made is still there, unchanged.
	_, js := jetStreamAs(t, s, "setup")
	if _, err := (jobs.Topology{}).Check(testContext(t, 5*time.Second), js); err != nil {
		t.Fatalf("after the attempts: %v", err)
	}
	jsz, err := s.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		t.Fatal(err)
	}
	if jsz.Streams != 8 {
		t.Fatalf("the server holds %d streams, want jobwire's 8", jsz.Streams)
	}
}

// The setup user may set the topology up and nothing else: no jobs, no
// events, no consumers, no deleting, no streams of other names.
func TestSetupUserOnlySetsUp(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	setUpTopology(t, s)
	su := connectAs(t, s, "setup")
	id := jobs.NewID(time.Now())
	jsPublishFails(t, su, jobs.QueueSubject("demo", id), fakeRequest())
	jsPublishFails(t, su, jobs.EventSubject("demo", id), fakeEvent(id))
	for _, subject := range []string{
		"$JS.API.STREAM.CREATE.MINE",
		"$JS.API.STREAM.DELETE.JOBS",
		"$JS.API.STREAM.PURGE.JOBS",
		"$JS.API.CONSUMER.CREATE.JOBS.thief",
		"$JS.API.DIRECT.GET.JOBS." + jobs.JobSubjects(id),
	} {
		if _, err := su.Request(subject, []byte(`{}`), 200*time.Millisecond); err == nil {
			t.Fatalf("request on %s was answered", subject)
		}
		su.errs.violation(t, "publish", subject)
	}
	if _, err := su.SubscribeSync(jobs.AllProgress); err != nil {
		t.Fatal(err)
	}
	su.errs.violation(t, "subscription", jobs.AllProgress)
}

// With TOPOLOGY=check, a gateway or runner facing missing or different
// streams gets one error that lists every problem and names jobwire-setup,
// without a permissions violation: the check only looks.
func TestCheckModeReportsMissingAndDifferentStreams(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	check := func(user string, wants ...string) {
		t.Helper()
		c, js := jetStreamAs(t, s, user)
		_, err := (jobs.Topology{}).Check(testContext(t, 5*time.Second), js)
		var te *jobs.TopologyError
		if !errors.As(err, &te) {
			t.Fatalf("Check as %s: %v, want a *jobs.TopologyError", user, err)
		}
		if user == "runner" { // the runner's own start-up gives the same error
			_, rerr := worker.New(testContext(t, 5*time.Second), c.Conn, worker.Config{
				CheckTopology: true, Logger: slog.New(slog.DiscardHandler),
			}, jobtypes.Builtin()...)
			if rerr == nil || rerr.Error() != err.Error() {
				t.Fatalf("worker.New in check mode: %v\nwant %v", rerr, err)
			}
		}
		for _, want := range append(wants, "jobwire-setup") {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s's check: %q does not say %q", user, err, want)
			}
		}
		c.errs.none(t, user)
	}
	missing := []string{
		"stream JOBS is missing", "stream JOBS_RECORDS is missing",
		"bucket JOBWIRE_TYPES is missing", "bucket JOBWIRE_IDEMPOTENCY is missing",
	}
	check("gateway", missing...)
	check("runner", missing...)

	// Set up with other settings (the set-up's EVENTS_MAX_AGE is not the services').
	_, js := jetStreamAs(t, s, "setup")
	if _, err := (jobs.Topology{EventsMaxAge: time.Hour}).CreateOrUpdate(testContext(t, 5*time.Second), js); err != nil {
		t.Fatal(err)
	}
	different := []string{"stream JOBS: max_age is 1h0m0s, want 168h0m0s", "stream JOBS_RECORDS: max_age is 721h0m0s, want 888h0m0s"}
	check("gateway", different...)
	check("runner", different...)
}

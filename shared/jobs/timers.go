package jobs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Timers: what must happen at a time is left to JetStream message
// schedules (nats-server 2.14+), which fire from the stream's leader, so
// no process of ours keeps time. A schedule lives in TimersStream and
// fires into a subject of the same stream that the gateways' timers
// consumer (TimersConsumer) reads and turns into the job's next step:
//
//	jobwire.timers.at.<id>        @at run_at      → jobwire.timers.due.<id>       a delayed job is due
//	jobwire.timers.deadline.<id>  @at expires_at  → jobwire.timers.expired.<id>   a job not started by then expires
//	jobwire.timers.cron.<sched>   cron or @every  → jobwire.timers.tick.<sched>   a recurring schedule fires
//
// and each recurring schedule's definition is kept on
// jobwire.timers.def.<owner key>.<sched>. A firing is a message of its
// own, acked by the consumer once handled: a gateway that dies halfway
// leaves it to another, and every step it makes is fenced or idempotent.
const (
	TimersStream   = "JOBS_TIMERS"
	TimersConsumer = "jobwire_timers"
)

// Subjects of TimersStream.
func DueTimerSubject(id string) string      { return "jobwire.timers.at." + id }
func DueSubject(id string) string           { return "jobwire.timers.due." + id }
func DeadlineTimerSubject(id string) string { return "jobwire.timers.deadline." + id }
func ExpiredSubject(id string) string       { return "jobwire.timers.expired." + id }
func CronSubject(schedID string) string     { return "jobwire.timers.cron." + schedID }
func TickSubject(schedID string) string     { return "jobwire.timers.tick." + schedID }
func ScheduleDefSubject(owner, schedID string) string {
	return "jobwire.timers.def." + OwnerKey(owner) + "." + schedID
}

// ScheduleDefFilter matches the schedule definitions of owner ("" for
// everyone's).
func ScheduleDefFilter(owner string) string {
	if owner == "" {
		return "jobwire.timers.def.*.*"
	}
	return "jobwire.timers.def." + OwnerKey(owner) + ".*"
}

// ScheduleDefsOf matches the definition of schedule schedID, whoever owns it.
func ScheduleDefsOf(schedID string) string { return "jobwire.timers.def.*." + schedID }

// TimersStreamConfig is TimersStream. The server turns rollups on and
// purges' denial off for a stream with schedules (a schedule replaces
// what its subject held).
func (t Topology) TimersStreamConfig() jetstream.StreamConfig {
	t = t.withDefaults()
	return jetstream.StreamConfig{
		Name:              TimersStream,
		Description:       "jobwire timers: delayed jobs, deadlines, recurring schedules (JetStream message schedules)",
		Subjects:          []string{"jobwire.timers.>"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          t.Replicas,
		MaxAge:            t.EventsMaxAge, // firings; schedules and definitions never expire (Nats-TTL: never)
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
		AllowRollup:       true,
		AllowMsgTTL:       true,
		AllowMsgSchedules: true,
	}
}

// TimersConsumerConfig is the durable consumer of firings the gateways
// share.
func (t Topology) TimersConsumerConfig() jetstream.ConsumerConfig {
	t = t.withDefaults()
	return jetstream.ConsumerConfig{
		Durable:        TimersConsumer,
		Description:    "jobwire gateways' timers: due, expired and recurring jobs",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        30 * time.Second,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		FilterSubjects: []string{"jobwire.timers.due.*", "jobwire.timers.expired.*", "jobwire.timers.tick.*"},
		MaxAckPending:  4096,
		Replicas:       t.Replicas,
	}
}

// Message schedule headers (ADR-51).
const (
	scheduleHeader       = "Nats-Schedule"
	scheduleTargetHeader = "Nats-Schedule-Target"
	scheduleZoneHeader   = "Nats-Schedule-Time-Zone"
	ttlHeader            = "Nats-TTL"
)

// AtTimerMsg is a schedule on subject that fires once, at at, into target.
// Sub-second times are kept (nats.go's option would cut them to seconds);
// the server looks at its schedules four times a second.
func AtTimerMsg(subject, target string, at time.Time) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(scheduleHeader, "@at "+at.UTC().Format(time.RFC3339Nano))
	m.Header.Set(scheduleTargetHeader, target)
	m.Header.Set(ttlHeader, "never")
	return m
}

// RepeatTimerMsg is a recurring schedule on subject firing into target:
// spec is a 6-field cron expression (seconds first) or "@every <duration>"
// (at least 1s); zone an IANA time zone for a cron expression ("" for UTC).
func RepeatTimerMsg(subject, target, spec, zone string, payload []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = payload
	m.Header.Set(scheduleHeader, spec)
	m.Header.Set(scheduleTargetHeader, target)
	m.Header.Set(ttlHeader, "never")
	if zone != "" {
		m.Header.Set(scheduleZoneHeader, zone)
	}
	return m
}

// WriteTimers stores the timers req needs before its request is stored:
// for a deferred request its due timer, for a deadline its deadline timer.
// Written first, a timer may fire for a job whose request was never
// stored (the submit failed after it); the timers consumer then finds no
// job and drops the firing.
func WriteTimers(ctx context.Context, js jetstream.Publisher, req Request) error {
	if req.Deferred && req.RunAt != nil {
		m := AtTimerMsg(DueTimerSubject(req.ID), DueSubject(req.ID), *req.RunAt)
		m.Header.Set(jetstream.MsgIDHeader, "at."+req.ID)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			return fmt.Errorf("store the job's due time: %w", err)
		}
	}
	if req.ExpiresAt != nil {
		m := AtTimerMsg(DeadlineTimerSubject(req.ID), ExpiredSubject(req.ID), *req.ExpiresAt)
		m.Header.Set(jetstream.MsgIDHeader, "deadline."+req.ID)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			return fmt.Errorf("store the job's deadline: %w", err)
		}
	}
	return nil
}

// Firing is what a message of TimersConsumer is: a delayed job due
// (FiringDue), a job's deadline (FiringExpired) or a recurring schedule's
// tick (FiringTick), and the job or schedule id.
type Firing int

const (
	FiringUnknown Firing = iota
	FiringDue
	FiringExpired
	FiringTick
)

// FiringOf reads a firing's subject.
func FiringOf(subject string) (Firing, string) {
	for _, f := range []struct {
		prefix string
		kind   Firing
	}{{"jobwire.timers.due.", FiringDue}, {"jobwire.timers.expired.", FiringExpired}, {"jobwire.timers.tick.", FiringTick}} {
		if id, ok := strings.CutPrefix(subject, f.prefix); ok && ValidateID(id) == nil {
			return f.kind, id
		}
	}
	return FiringUnknown, ""
}

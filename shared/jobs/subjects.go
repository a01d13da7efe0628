package jobs

import (
	"strings"
	"time"
)

// Stream, consumer and bucket names.
const (
	// QueueStream is the work-queue stream holding job requests.
	QueueStream = "JOBS"
	// EventsStream keeps every job's events, so a job's history can be
	// replayed and its last event (its current state) read directly. It
	// stores them on jobwire.events.<id> and then republishes each one on
	// jobs.<id>.progress: live subscribers see only events that are stored.
	EventsStream = "JOBS_EVENTS"
	// TypesBucket is the key-value bucket where runners register job types.
	TypesBucket = "JOBWIRE_TYPES"
	// IdempotencyBucket maps Idempotency-Key values to job ids.
	IdempotencyBucket = "JOBWIRE_IDEMPOTENCY"
	// RecordsStream keeps each job's write-once records: its owner (written
	// at submit by the gateway) and its end (which event is final). It keeps
	// them past the events' age, so an ended job whose events have aged out
	// is "expired", not unknown.
	RecordsStream = "JOBS_RECORDS"
)

// Wildcards for subscriptions and stream subjects.
const (
	// AllProgress matches the progress subject of every job.
	AllProgress = "jobs.*.progress"
	// AllEvents matches the subject every job's events are written to.
	AllEvents = "jobwire.events.*"
	// AllCancel matches the cancel subject of every job.
	AllCancel = "jobs.*.cancel"
	// AllQueue matches every job request.
	AllQueue = "jobwire.queue.>"
	// AllOwners matches every job's owner record.
	AllOwners = "jobwire.owners.*"
	// AllEnds matches every job's end record.
	AllEnds = "jobwire.ends.*"
)

// Defaults for the streams' retention.
const (
	DefaultEventsMaxAge         = 7 * 24 * time.Hour
	DefaultEventsMaxPerJob      = 10_000
	DefaultIdempotencyTTL       = 24 * time.Hour
	DefaultQueueDuplicateWindow = 2 * time.Minute
	DefaultTombstoneTTL         = 30 * 24 * time.Hour
)

// ProgressSubject is the subject carrying every event of job id, live,
// once it is stored. The id must have passed ValidateID.
func ProgressSubject(id string) string { return "jobs." + id + ".progress" }

// EventSubject is where the events of job id are written and stored (in
// EventsStream, which republishes them on ProgressSubject). Write with
// PublishEvent; read history and state from the stream on this subject.
func EventSubject(id string) string { return "jobwire.events." + id }

// OwnerSubject is where job id's owner record is stored (RecordsStream).
func OwnerSubject(id string) string { return "jobwire.owners." + id }

// EndSubject is where job id's end record is stored (RecordsStream).
func EndSubject(id string) string { return "jobwire.ends." + id }

// progressDestination is how EventsStream republishes: jobwire.events.<id>
// becomes jobs.<id>.progress.
const progressDestination = "jobs.{{wildcard(1)}}.progress"

// CancelSubject is the subject for cancel requests of job id.
func CancelSubject(id string) string { return "jobs." + id + ".cancel" }

// QueueSubject is the subject a request for a job of type typ is stored on.
func QueueSubject(typ string) string { return "jobwire.queue." + typ }

// TypeFromQueueSubject returns the job type of a jobwire.queue.<type>
// subject.
func TypeFromQueueSubject(subject string) (string, bool) {
	typ, ok := strings.CutPrefix(subject, "jobwire.queue.")
	if !ok || ValidateType(typ) != nil {
		return "", false
	}
	return typ, true
}

// IDFromProgressSubject returns the job id of a jobs.<id>.progress subject.
func IDFromProgressSubject(subject string) (string, bool) {
	return idFromSubject(subject, ".progress")
}

// IDFromEventSubject returns the job id of a jobwire.events.<id> subject.
func IDFromEventSubject(subject string) (string, bool) {
	id, ok := strings.CutPrefix(subject, "jobwire.events.")
	if !ok || ValidateID(id) != nil {
		return "", false
	}
	return id, true
}

// IDFromCancelSubject returns the job id of a jobs.<id>.cancel subject.
func IDFromCancelSubject(subject string) (string, bool) {
	return idFromSubject(subject, ".cancel")
}

func idFromSubject(subject, suffix string) (string, bool) {
	id, ok := strings.CutPrefix(subject, "jobs.")
	if !ok {
		return "", false
	}
	id, ok = strings.CutSuffix(id, suffix)
	if !ok || ValidateID(id) != nil {
		return "", false
	}
	return id, true
}

// ConsumerName is the durable consumer of job type typ on QueueStream:
// "runners_<type>". Every runner that serves the type uses it, whatever
// other types it serves, so runners serving different sets of types (a
// rolling update that adds or removes a type) share the consumers of the
// types they have in common, and no two consumers' filters ever overlap.
// The type must have passed ValidateType.
func ConsumerName(typ string) string { return "runners_" + typ }

package jobs

import (
	"strings"
	"time"
)

// Stream, consumer and bucket names.
const (
	// Stream keeps every job: its request, stored once at submit on
	// jobwire.queue.<type>.<id>, which is also the job's first event
	// ("queued", seq 1), then its events on jobwire.events.<type>.<id>.
	// Runners consume the requests through one durable consumer per type
	// (ConsumerName); the stream keeps them after the ack (limits
	// retention, the events' age), so a job's history is every message on
	// JobSubjects(id), in stream order, and its last message its current
	// state. The stream republishes every stored message on
	// jobs.<id>.progress: live subscribers see only what is stored.
	Stream = "JOBS"
	// TypesBucket is the key-value bucket where runners register job types.
	TypesBucket = "JOBWIRE_TYPES"
	// IdempotencyBucket maps Idempotency-Key values to job ids.
	IdempotencyBucket = "JOBWIRE_IDEMPOTENCY"
	// RecordsStream keeps each job's write-once end record (which event is
	// final, and whose job it was). It keeps them past the events' age, so
	// an ended job whose events have aged out is "expired", not unknown.
	RecordsStream = "JOBS_RECORDS"
	// OldEventsStream is the events stream of jobwire's first layout
	// (requests in a work-queue stream JOBS, events in JOBS_EVENTS, owner
	// records in JOBS_RECORDS). This version neither reads nor writes it;
	// see ErrOldLayout.
	OldEventsStream = "JOBS_EVENTS"
)

// Wildcards for subscriptions and stream subjects.
const (
	// AllProgress matches the progress subject of every job.
	AllProgress = "jobs.*.progress"
	// AllEvents matches the subject every job's events after its request
	// are written to.
	AllEvents = "jobwire.events.*.*"
	// AllCancel matches the cancel subject of every job.
	AllCancel = "jobs.*.cancel"
	// AllQueue matches every job request of normal priority; AllQueueHigh
	// and AllQueueLow those of high and low priority.
	AllQueue     = "jobwire.queue.*.*"
	AllQueueHigh = "jobwire.queue-high.*.*"
	AllQueueLow  = "jobwire.queue-low.*.*"
	// AllSched matches every delayed job's first message ("scheduled").
	AllSched = "jobwire.sched.*.*"
	// AllJobs matches every message of Stream: requests and events.
	AllJobs = "jobwire.*.*.*"
	// AllEnds matches every job's end record.
	AllEnds = "jobwire.ends.*"
	// AllRetries matches every job's retry record.
	AllRetries = "jobwire.retries.*"
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

// EventSubject is where the events of job id (of type typ) after its
// request are written and stored (in Stream, which republishes them on
// ProgressSubject). Write with PublishEvent; read history and state on
// JobSubjects. Type and id must have passed ValidateType and ValidateID.
func EventSubject(typ, id string) string { return "jobwire.events." + typ + "." + id }

// QueueSubject is where the request of job id, of type typ, is stored:
// the job's first message. Write with Enqueue.
func QueueSubject(typ, id string) string { return "jobwire.queue." + typ + "." + id }

// queueToken is the second token of the queue subjects of priority p.
func queueToken(p int) string {
	switch PriorityOf(p) {
	case PriorityHigh:
		return "jobwire.queue-high."
	case PriorityLow:
		return "jobwire.queue-low."
	}
	return "jobwire.queue."
}

// PriorityQueueSubject is the subject of job id's request at priority p
// (QueueSubject for normal priority): each priority has its own queue.
func PriorityQueueSubject(p int, typ, id string) string { return queueToken(p) + typ + "." + id }

// PriorityQueueFilter matches the requests of type typ at priority p.
func PriorityQueueFilter(p int, typ string) string { return queueToken(p) + typ + ".*" }

// IsRequestSubject reports whether subject is one a job's request is
// stored on (a queue of any priority, or jobwire.sched), not an event's.
func IsRequestSubject(subject string) bool {
	_, _, ok := JobOfSubject(subject)
	return ok && !strings.HasPrefix(subject, "jobwire.events.")
}

// SchedSubject is where a delayed job's first message ("scheduled") is
// stored at submit; its request follows on its queue subject when due.
func SchedSubject(typ, id string) string { return "jobwire.sched." + typ + "." + id }

// QueueFilter matches the requests of every job of type typ: the filter
// of its runners' consumer.
func QueueFilter(typ string) string { return "jobwire.queue." + typ + ".*" }

// JobSubjects matches every stored message of job id, its request and its
// events: its history. Every write of a job is fenced on the last
// message of these subjects.
func JobSubjects(id string) string { return "jobwire.*.*." + id }

// EndSubject is where job id's end record is stored (RecordsStream).
func EndSubject(id string) string { return "jobwire.ends." + id }

// RetrySubject is where job id's retry record is stored (RecordsStream):
// the id of the job that retries it, written once.
func RetrySubject(id string) string { return "jobwire.retries." + id }

// progressDestination is how Stream republishes: jobwire.queue.<type>.<id>
// and jobwire.events.<type>.<id> become jobs.<id>.progress.
const progressDestination = "jobs.{{wildcard(3)}}.progress"

// CancelSubject is the subject for cancel requests of job id.
func CancelSubject(id string) string { return "jobs." + id + ".cancel" }

// IDFromProgressSubject returns the job id of a jobs.<id>.progress subject.
func IDFromProgressSubject(subject string) (string, bool) {
	return idFromSubject(subject, ".progress")
}

// IDFromEventSubject returns the job id of a subject a job's message is
// stored on: jobwire.queue.<type>.<id> or jobwire.events.<type>.<id>.
func IDFromEventSubject(subject string) (string, bool) {
	_, id, ok := JobOfSubject(subject)
	return id, ok
}

// JobOfSubject returns the type and id of a subject a job's message is
// stored on: jobwire.queue.<type>.<id> or jobwire.events.<type>.<id>.
func JobOfSubject(subject string) (typ, id string, ok bool) {
	var rest string
	for _, prefix := range []string{"jobwire.queue.", "jobwire.events.", "jobwire.sched.", "jobwire.queue-high.", "jobwire.queue-low."} {
		if rest, ok = strings.CutPrefix(subject, prefix); ok {
			break
		}
	}
	if !ok {
		return "", "", false
	}
	typ, id, ok = strings.Cut(rest, ".")
	if !ok || ValidateType(typ) != nil || ValidateID(id) != nil {
		return "", "", false
	}
	return typ, id, true
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

// ConsumerName is the durable consumer of job type typ on Stream:
// "runners_<type>". Every runner that serves the type uses it, whatever
// other types it serves, so runners serving different sets of types (a
// rolling update that adds or removes a type) share the consumers of the
// types they have in common, and no two consumers' filters ever overlap.
// The type must have passed ValidateType.
func ConsumerName(typ string) string { return "runners_" + typ }

// PriorityConsumerName is the durable consumer of job type typ's requests
// at priority p: ConsumerName for normal priority, "runners_<type>_high"
// and "runners_<type>_low" for the others. Like ConsumerName, every runner
// serving the type shares them.
func PriorityConsumerName(p int, typ string) string {
	switch PriorityOf(p) {
	case PriorityHigh:
		return ConsumerName(typ) + "_high"
	case PriorityLow:
		return ConsumerName(typ) + "_low"
	}
	return ConsumerName(typ)
}

// Priorities are the request priorities, highest first.
var Priorities = [...]int{PriorityHigh, PriorityNormal, PriorityLow}

// PriorityName is "high", "normal" or "low".
func PriorityName(p int) string {
	switch PriorityOf(p) {
	case PriorityHigh:
		return "high"
	case PriorityLow:
		return "low"
	}
	return "normal"
}

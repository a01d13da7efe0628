package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Topology holds the settings of the streams and buckets jobwire needs.
// The zero value means the documented defaults.
type Topology struct {
	Replicas        int           // 1 (default) or 3 on a cluster
	EventsMaxAge    time.Duration // how long job events are kept
	EventsMaxPerJob int64         // how many events are kept per job
	IdempotencyTTL  time.Duration // how long an Idempotency-Key is remembered
	// TombstoneTTL is how long an ended job is remembered after its events
	// have aged out (then it is "expired", not unknown).
	TombstoneTTL time.Duration
}

func (t Topology) withDefaults() Topology {
	if t.Replicas <= 0 {
		t.Replicas = 1
	}
	if t.EventsMaxAge <= 0 {
		t.EventsMaxAge = DefaultEventsMaxAge
	}
	if t.EventsMaxPerJob <= 0 {
		t.EventsMaxPerJob = DefaultEventsMaxPerJob
	}
	if t.IdempotencyTTL <= 0 {
		t.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if t.TombstoneTTL <= 0 {
		t.TombstoneTTL = DefaultTombstoneTTL
	}
	return t
}

// QueueStreamConfig is the work-queue stream of job requests.
func (t Topology) QueueStreamConfig() jetstream.StreamConfig {
	t = t.withDefaults()
	return jetstream.StreamConfig{
		Name:        QueueStream,
		Description: "jobwire job requests (work queue)",
		Subjects:    []string{AllQueue},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
		Duplicates:  DefaultQueueDuplicateWindow,
	}
}

// EventsStreamConfig is the stream that keeps every job's events.
func (t Topology) EventsStreamConfig() jetstream.StreamConfig {
	t = t.withDefaults()
	return jetstream.StreamConfig{
		Name:              EventsStream,
		Description:       "jobwire job events (history and current state)",
		Subjects:          []string{AllEvents},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          t.Replicas,
		MaxAge:            t.EventsMaxAge,
		Duplicates:        min(DefaultQueueDuplicateWindow, t.EventsMaxAge),
		MaxMsgsPerSubject: t.EventsMaxPerJob,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
		// Writes that the stream refuses (a fenced write that lost) never
		// reach the subscribers of jobs.<id>.progress; stored ones do, in
		// stream order.
		RePublish: &jetstream.RePublish{Source: AllEvents, Destination: progressDestination},
	}
}

// Streams are the handles to jobwire's streams and buckets.
type Streams struct {
	Queue       jetstream.Stream
	Events      jetstream.Stream
	Types       jetstream.KeyValue
	Idempotency jetstream.KeyValue
	Tombstones  jetstream.KeyValue
}

// CreateOrUpdate makes sure every stream and bucket exists with the given
// settings. It is idempotent, so gateways and runners all call it at
// start-up.
func (t Topology) CreateOrUpdate(ctx context.Context, js jetstream.JetStream) (*Streams, error) {
	t = t.withDefaults()
	var s Streams
	var err error
	if s.Queue, err = js.CreateOrUpdateStream(ctx, t.QueueStreamConfig()); err != nil {
		return nil, fmt.Errorf("stream %s: %w", QueueStream, err)
	}
	if s.Events, err = js.CreateOrUpdateStream(ctx, t.EventsStreamConfig()); err != nil {
		return nil, fmt.Errorf("stream %s: %w", EventsStream, err)
	}
	if s.Types, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      TypesBucket,
		Description: "jobwire job types registered by runners",
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", TypesBucket, err)
	}
	if s.Idempotency, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      IdempotencyBucket,
		Description: "jobwire Idempotency-Key to job id",
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
		TTL:         t.IdempotencyTTL,
	}); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", IdempotencyBucket, err)
	}
	if s.Tombstones, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      TombstonesBucket,
		Description: "jobwire ended jobs, kept past their events' age",
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
		TTL:         t.EventsMaxAge + t.TombstoneTTL,
	}); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", TombstonesBucket, err)
	}
	return &s, nil
}

// LastEvent reads the current state of job id: its last stored event.
// It returns ErrNotFound when the job has no events.
func LastEvent(ctx context.Context, events jetstream.Stream, id string) (Event, uint64, error) {
	if err := ValidateID(id); err != nil {
		return Event{}, 0, err
	}
	m, err := events.GetLastMsgForSubject(ctx, EventSubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Event{}, 0, ErrNotFound
	}
	if err != nil {
		return Event{}, 0, err
	}
	var ev Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return Event{}, 0, fmt.Errorf("job %s: stored event is not valid: %w", id, err)
	}
	return ev, m.Sequence, nil
}

// ErrNotFound means a job has no stored events.
var ErrNotFound = errors.New("job not found")

// IsWrongLastSequence reports whether a publish failed because its
// expected last subject sequence did not match: someone else wrote first.
func IsWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// PublishEvent stores ev on its job's progress subject, but only if the
// last stored event of that job is still the one at stream sequence
// lastSubjectSeq (0: the job has no events yet). This fences writers: two
// writers can never interleave events of one job, and one that lost the
// race gets an error for which IsWrongLastSequence is true. It returns the
// stream sequence of the stored event.
func PublishEvent(ctx context.Context, js jetstream.Publisher, ev Event, lastSubjectSeq uint64) (uint64, error) {
	if err := ValidateID(ev.JobID); err != nil {
		return 0, err
	}
	data, err := ev.MarshalJSON() // directly: json.Marshal would re-scan the output
	if err != nil {
		return 0, err
	}
	ack, err := js.Publish(ctx, EventSubject(ev.JobID), data,
		jetstream.WithExpectStream(EventsStream),
		jetstream.WithExpectLastSequencePerSubject(lastSubjectSeq))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// Bury records that job id has ended, so that after its events age out it
// is reported as expired rather than unknown.
func Bury(ctx context.Context, tombstones jetstream.KeyValue, ev Event) error {
	if err := ValidateID(ev.JobID); err != nil {
		return err
	}
	b, _ := json.Marshal(tombstone{ev.Status, ev.Owner, ev.Time.UTC()})
	_, err := tombstones.Put(ctx, ev.JobID, b)
	return err
}

type tombstone struct {
	Status Status    `json:"status"`
	Owner  string    `json:"owner,omitempty"`
	Time   time.Time `json:"time"`
}

// Buried reports whether job id ended and was remembered, and its owner.
func Buried(ctx context.Context, tombstones jetstream.KeyValue, id string) (found bool, owner string, err error) {
	if err := ValidateID(id); err != nil {
		return false, "", err
	}
	e, err := tombstones.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, "", nil
	case err != nil:
		return false, "", err
	}
	var t tombstone
	_ = json.Unmarshal(e.Value(), &t)
	return true, t.Owner, nil
}

package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Topology holds the settings of the streams and buckets jobwire needs.
// The zero value means the documented defaults.
type Topology struct {
	// Replicas is how many copies of every stream, bucket and durable
	// consumer the cluster keeps: 1 (default), or 3 (or 5) on a cluster.
	// Consumers get it explicitly: one left at R1 on an R3 stream would
	// stop delivering when its one node dies.
	Replicas        int
	EventsMaxAge    time.Duration // how long job events are kept
	EventsMaxPerJob int64         // how many events are kept per job
	IdempotencyTTL  time.Duration // how long an Idempotency-Key is remembered
	// TombstoneTTL is how long a job's records (owner, end) are kept after
	// its events have aged out: an ended job is then "expired", not unknown.
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

// StreamConfig is the stream of every job's request and events (Stream).
func (t Topology) StreamConfig() jetstream.StreamConfig {
	t = t.withDefaults()
	return jetstream.StreamConfig{
		Name:        Stream,
		Description: "jobwire jobs: requests (each one also its job's queued event) and events",
		Subjects:    []string{AllQueue, AllQueueHigh, AllQueueLow, AllSched, AllEvents},
		// Limits, not a work queue: a request stays after its ack, as the
		// job's first event, until its events age out.
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
		// stream order, the request first.
		RePublish: &jetstream.RePublish{Source: AllJobs, Destination: progressDestination},
	}
}

// RecordsStreamConfig is the stream of the jobs' write-once end records
// (see RecordEnd) and retry records (see RecordRetry): one message per subject, and the server refuses
// a second one, so the first write wins whoever writes next.
func (t Topology) RecordsStreamConfig() jetstream.StreamConfig {
	t = t.withDefaults()
	return jetstream.StreamConfig{
		Name:                 RecordsStream,
		Description:          "jobwire job ends and retries (write-once)",
		Subjects:             []string{AllEnds, AllRetries},
		Retention:            jetstream.LimitsPolicy,
		Storage:              jetstream.FileStorage,
		Replicas:             t.Replicas,
		MaxAge:               t.EventsMaxAge + t.TombstoneTTL,
		MaxMsgsPerSubject:    1,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		DenyDelete:           true,
		DenyPurge:            true,
		AllowDirect:          true,
	}
}

// RunnerConsumerConfig is the durable consumer that every runner serving
// job type typ shares for its requests of normal priority (ConsumerName),
// with the given ack wait, at the topology's replica count.
func (t Topology) RunnerConsumerConfig(typ string, ackWait time.Duration) jetstream.ConsumerConfig {
	return t.PriorityRunnerConsumerConfig(PriorityNormal, typ, ackWait)
}

// PriorityRunnerConsumerConfig is RunnerConsumerConfig for the requests of
// priority p (PriorityConsumerName, filter PriorityQueueFilter).
func (t Topology) PriorityRunnerConsumerConfig(p int, typ string, ackWait time.Duration) jetstream.ConsumerConfig {
	t = t.withDefaults()
	desc := "jobwire runners of job type " + typ
	if PriorityOf(p) != PriorityNormal {
		desc += ", " + PriorityName(p) + " priority"
	}
	return jetstream.ConsumerConfig{
		Durable:        PriorityConsumerName(p, typ),
		Description:    desc,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait,
		FilterSubjects: []string{PriorityQueueFilter(p, typ)},
		MaxAckPending:  10_000,
		Replicas:       t.Replicas,
	}
}

// errReplicasExceedStream is the server's answer to a consumer of more
// replicas than its stream has (yet).
const errReplicasExceedStream = 10126

// CreateOrUpdateConsumer creates durable consumer cfg on Stream, or
// updates it in place (keeping its pending and in-flight messages). While
// the stream is still scaling up to the consumer's replicas it waits (and
// calls waiting, if not nil, once), as long as ctx allows.
func CreateOrUpdateConsumer(ctx context.Context, js jetstream.JetStream, cfg jetstream.ConsumerConfig, waiting func()) (jetstream.Consumer, error) {
	return createOrUpdateConsumerOn(ctx, js, Stream, cfg, waiting)
}

func createOrUpdateConsumerOn(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig, waiting ...func()) (jetstream.Consumer, error) {
	var wait func()
	if len(waiting) > 0 {
		wait = waiting[0]
	}
	for {
		cons, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != errReplicasExceedStream {
			return cons, err
		}
		if wait != nil {
			wait()
			wait = nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (the stream is still scaling up to %d replicas)", err, cfg.Replicas)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Streams are the handles to jobwire's streams and buckets.
type Streams struct {
	// Events is Stream: every job's request and events.
	Events      jetstream.Stream
	Types       jetstream.KeyValue
	Idempotency jetstream.KeyValue
	Records     jetstream.Stream
	// The job index (index.go): lists, counters, ends per minute, and the
	// indexers' consumer.
	Index   jetstream.Stream
	Counts  jetstream.Stream
	Minutes jetstream.Stream
	Indexer jetstream.Consumer
	// The timers (timers.go): their stream and the gateways' consumer.
	Timers       jetstream.Stream
	TimersFiring jetstream.Consumer
}

// indexStreams are the index's streams with where CreateOrUpdate and Check
// put their handles.
func (t Topology) indexStreams(s *Streams) []struct {
	cfg    jetstream.StreamConfig
	handle *jetstream.Stream
} {
	return []struct {
		cfg    jetstream.StreamConfig
		handle *jetstream.Stream
	}{{t.IndexStreamConfig(), &s.Index}, {t.CountsStreamConfig(), &s.Counts}, {t.MinutesStreamConfig(), &s.Minutes}, {t.TimersStreamConfig(), &s.Timers}}
}

// CreateOrUpdate makes sure every stream and bucket exists with the given
// settings. It is idempotent: jobwire-setup calls it, and so do gateways
// and runners at start-up unless they only check (TOPOLOGY=check, Check). A stream or bucket of another replica count is updated in
// place (the server then moves its data; from R1 to R3 that takes some
// seconds, during which it keeps working).
func (t Topology) CreateOrUpdate(ctx context.Context, js jetstream.JetStream) (*Streams, error) {
	t = t.withDefaults()
	var s Streams
	var err error
	if err := refuseOldLayout(ctx, js); err != nil {
		return nil, err
	}
	if s.Events, err = js.CreateOrUpdateStream(ctx, t.StreamConfig()); err != nil {
		return nil, fmt.Errorf("stream %s: %w", Stream, err)
	}
	if s.Records, err = js.CreateOrUpdateStream(ctx, t.RecordsStreamConfig()); err != nil {
		return nil, fmt.Errorf("stream %s: %w", RecordsStream, err)
	}
	for _, x := range t.indexStreams(&s) {
		if *x.handle, err = js.CreateOrUpdateStream(ctx, x.cfg); err != nil {
			return nil, fmt.Errorf("stream %s: %w", x.cfg.Name, err)
		}
	}
	if s.Indexer, err = CreateOrUpdateConsumer(ctx, js, t.IndexerConsumerConfig(), nil); err != nil {
		return nil, fmt.Errorf("consumer %s: %w", IndexerConsumer, err)
	}
	if s.TimersFiring, err = createOrUpdateConsumerOn(ctx, js, TimersStream, t.TimersConsumerConfig()); err != nil {
		return nil, fmt.Errorf("consumer %s: %w", TimersConsumer, err)
	}
	if s.Types, err = js.CreateOrUpdateKeyValue(ctx, t.typesBucketConfig()); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", TypesBucket, err)
	}
	if s.Idempotency, err = js.CreateOrUpdateKeyValue(ctx, t.idempotencyBucketConfig()); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", IdempotencyBucket, err)
	}
	return t.readers(js, &s), nil
}

// ErrOldLayout means the server holds jobwire's first layout: a
// work-queue stream JOBS of requests (beside JOBS_EVENTS and owner
// records). That stream cannot be changed into this version's JOBS in
// place (JetStream does not change a stream's retention), and its jobs are
// not readable by this version. docs/lifecycle.md ("Upgrading from the
// first layout") says how to move: let the old runners finish the queued
// jobs, then remove the old JOBS stream and run the set-up again.
var ErrOldLayout = errors.New("the NATS server holds jobwire's first stream layout (JOBS is a work queue)")

// refuseOldLayout returns ErrOldLayout if Stream is a work queue.
func refuseOldLayout(ctx context.Context, js jetstream.JetStream) error {
	st, err := js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", Stream, err)
	}
	if info := st.CachedInfo(); info.Config.Retention == jetstream.WorkQueuePolicy {
		return fmt.Errorf("%w: it holds %d job requests; let the old runners finish them, then remove it (nats stream rm %s) and run the set-up again; "+
			"%s and the owner records in %s belong to the old layout too and are no longer read", ErrOldLayout, info.State.Msgs, Stream, OldEventsStream, RecordsStream)
	}
	return nil
}

// readers sets how s reads: on a replicated cluster a job's state and
// records are read back right after they are written (GET after the
// 202), so from the stream's leader (see LeaderReads).
func (t Topology) readers(js jetstream.JetStream, s *Streams) *Streams {
	if t.Replicas > 1 {
		s.Events, s.Records = LeaderReads(js.Conn(), s.Events), LeaderReads(js.Conn(), s.Records)
		if s.Index != nil { // the indexer reads back its records before it changes them
			s.Index = LeaderReads(js.Conn(), s.Index)
		}
	}
	return s
}

// The buckets as CreateOrUpdate makes them (and Check expects them).
func (t Topology) typesBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket: TypesBucket, Description: "jobwire job types registered by runners",
		Storage: jetstream.FileStorage, Replicas: t.Replicas,
	}
}

func (t Topology) idempotencyBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket: IdempotencyBucket, Description: "jobwire Idempotency-Key to job id",
		Storage: jetstream.FileStorage, Replicas: t.Replicas, TTL: t.IdempotencyTTL,
	}
}

// LastEvent reads the last stored event of job id. That is its state
// unless something was stored after its final event: State reads the
// state. It returns ErrNotFound when the job has no events.
func LastEvent(ctx context.Context, events jetstream.Stream, id string) (Event, uint64, error) {
	if err := ValidateID(id); err != nil {
		return Event{}, 0, err
	}
	last, err := lastEvent(ctx, events, id)
	return last.ev, last.seq, err
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

// PublishEvent stores ev on its job's event subject, but only if the
// last stored message of that job (its request, or its last event) is
// still the one at stream sequence lastSeq. This fences writers: two
// writers can never interleave events of one job, and one that lost the
// race gets an error for which IsWrongLastSequence is true. It returns the
// stream sequence of the stored event. When ctx carries a span, the event
// carries its W3C trace context as NATS headers (see TraceparentHeader).
func PublishEvent(ctx context.Context, js jetstream.Publisher, ev Event, lastSeq uint64) (uint64, error) {
	m, err := EventMsg(ev, lastSeq)
	if err != nil {
		return 0, err
	}
	return PublishEventMsg(ctx, js, m)
}

// EventMsg is ev as PublishEvent stores it: its JSON on the job's event
// subject, with the headers that fence it on the job's message at stream
// sequence lastSeq. A caller that adds headers of its own (trace context)
// adds them to the message and stores it with PublishEventMsg.
func EventMsg(ev Event, lastSeq uint64) (*nats.Msg, error) {
	if err := ValidateID(ev.JobID); err != nil {
		return nil, err
	}
	if err := ValidateType(ev.Type); err != nil {
		return nil, err
	}
	data, err := ev.MarshalJSON() // directly: json.Marshal would re-scan the output
	if err != nil {
		return nil, err
	}
	m := &nats.Msg{Subject: EventSubject(ev.Type, ev.JobID), Data: data, Header: make(nats.Header, 4)}
	fence(m.Header, ev.JobID, lastSeq)
	return m, nil
}

// PublishEventMsg stores an EventMsg, with the trace context of ctx (if
// it carries a span) as headers, and returns its stream sequence.
func PublishEventMsg(ctx context.Context, js jetstream.Publisher, m *nats.Msg) (uint64, error) {
	InjectTrace(ctx, m.Header)
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// fence sets the headers that make Stream store a message of job id only
// if the job's last stored message is at stream sequence lastSeq (0: the
// job has none yet).
func fence(h nats.Header, id string, lastSeq uint64) {
	h[jetstream.ExpectedStreamHeader] = []string{Stream}
	h[jetstream.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(lastSeq, 10)}
	h[jetstream.ExpectedLastSubjSeqSubjHeader] = []string{JobSubjects(id)}
}

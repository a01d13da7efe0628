package jobops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// SubmitRequest is a job to submit: the body of POST /api/jobs.
type SubmitRequest struct {
	Type  string          `json:"type"`
	Input json.RawMessage `json:"input,omitempty"`
	// When and how urgently (see timing): run_at (RFC 3339) or delay (a
	// duration such as "90s"), expires_at (RFC 3339), priority (1-3).
	RunAt     string `json:"run_at,omitempty"`
	Delay     string `json:"delay,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty"`
	Priority  int    `json:"priority,omitempty"`
}

// timing is when and how urgently a submitted job runs.
type timing struct {
	runAt, expiresAt *time.Time
	deferred         bool // due later: stored "scheduled" until then
	priority         int
}

// apply sets t on a request.
func (t timing) apply(r jobs.Request) jobs.Request {
	r.RunAt, r.ExpiresAt, r.Deferred, r.Priority = t.runAt, t.expiresAt, t.deferred, t.priority
	return r
}

// timingOf reads and checks req's timing at now. A run_at within the last
// second counts as now (clocks differ a little); further in the past it
// is refused, as is a time past the longest delay: the job's "scheduled"
// event must not age out of the stream (maxDelay) before it is due.
func timingOf(req SubmitRequest, now time.Time, maxDelay time.Duration) (timing, error) {
	var t timing
	parse := func(field, v string) (*time.Time, error) {
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, &InvalidArgumentError{fmt.Sprintf("%q must be an RFC 3339 time such as 2026-12-24T18:00:00Z; %q is not", field, v)}
		}
		at = at.UTC()
		return &at, nil
	}
	switch {
	case req.RunAt != "" && req.Delay != "":
		return t, &InvalidArgumentError{`give "run_at" or "delay", not both`}
	case req.Delay != "":
		d, err := time.ParseDuration(req.Delay)
		if err != nil || d <= 0 {
			return t, &InvalidArgumentError{fmt.Sprintf(`"delay" must be a positive duration such as "90s" or "2h30m"; %q is not`, req.Delay)}
		}
		at := now.Add(d)
		t.runAt = &at
	case req.RunAt != "":
		at, err := parse("run_at", req.RunAt)
		if err != nil {
			return t, err
		}
		if at.Before(now.Add(-time.Second)) {
			return t, &InvalidArgumentError{fmt.Sprintf(`"run_at" %s is in the past (now is %s)`, at.Format(time.RFC3339), now.Format(time.RFC3339))}
		}
		t.runAt = at
	}
	if t.runAt != nil {
		if t.runAt.Sub(now) > maxDelay {
			return t, &InvalidArgumentError{fmt.Sprintf("a job may be delayed by at most %s (the events' age); this one by %s", maxDelay, t.runAt.Sub(now).Round(time.Second))}
		}
		t.deferred = t.runAt.After(now)
	}
	if req.ExpiresAt != "" {
		exp, err := parse("expires_at", req.ExpiresAt)
		if err != nil {
			return t, err
		}
		switch {
		case !exp.After(now):
			return t, &InvalidArgumentError{fmt.Sprintf(`"expires_at" %s is not in the future`, exp.Format(time.RFC3339))}
		case t.runAt != nil && !exp.After(*t.runAt):
			return t, &InvalidArgumentError{`"expires_at" must be after the job is due ("run_at" or now + "delay")`}
		case exp.Sub(now) > maxDelay:
			return t, &InvalidArgumentError{fmt.Sprintf(`"expires_at" may be at most %s away`, maxDelay)}
		}
		t.expiresAt = exp
	}
	if req.Priority != 0 && (req.Priority < jobs.PriorityHigh || req.Priority > jobs.PriorityLow) {
		return t, &InvalidArgumentError{fmt.Sprintf(`"priority" must be 1 (high), 2 (normal) or 3 (low); %d is not`, req.Priority)}
	}
	t.priority = req.Priority
	return t, nil
}

// maxDelay is how far ahead a job may be due: a day less than the events
// are kept (a year when they are kept for ever).
func (s *Service) maxDelay() time.Duration {
	age := s.streams.Events.CachedInfo().Config.MaxAge
	if age <= 0 {
		return 365 * 24 * time.Hour
	}
	return max(age-24*time.Hour, age/2)
}

// submitTimeout bounds the stores of one submission.
const submitTimeout = 10 * time.Second

// Submit checks a job request and stores it (jobs.Enqueue: one write,
// which is also the job's "queued" state), acknowledged by JetStream
// before it returns. With an idempotency key, a repeated submit returns the first
// job, and replayed is true.
func (s *Service) Submit(ctx context.Context, who Caller, req SubmitRequest, idemKey string) (snap jobs.Snapshot, replayed bool, err error) {
	known := false // a registered type: its name may be a label value
	defer func() { s.metrics.submitted(req.Type, known, replayed, err) }()
	if known, err = s.check(ctx, req); err != nil {
		return jobs.Snapshot{}, false, err
	}
	timing, err := timingOf(req, time.Now().UTC(), s.maxDelay())
	if err != nil {
		return jobs.Snapshot{}, false, err
	}
	if !s.nc.IsConnected() {
		return jobs.Snapshot{}, false, unavailable(nats.ErrConnectionClosed)
	}

	// One deadline for every store of this submission (JetStream would
	// otherwise make one per publish), and no cancellation: a client that
	// goes away half-way must not leave an idempotency key without its job.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), submitTimeout)
	defer cancel()
	now := time.Now().UTC()
	id := jobs.NewID(now)
	var idemRecord string
	if idemKey != "" {
		existing, key, err := s.claimIdempotencyKey(ctx, who.Owner+"\x00"+idemKey, req, id)
		if err != nil {
			return jobs.Snapshot{}, false, err
		}
		idemRecord = key
		if existing != "" {
			return s.replay(ctx, existing)
		}
	}

	queued, err := jobs.Enqueue(ctx, s.js, timing.apply(jobs.Request{ID: id, Type: req.Type, Input: req.Input, CreatedAt: now, Owner: who.Owner}))
	if err != nil {
		s.forgetIdempotencyKey(idemRecord)
		return jobs.Snapshot{}, false, unavailable(err)
	}
	return jobs.SnapshotOf(queued), false, nil
}

// check checks a job request against the rules and its type's input
// schema.
func (s *Service) check(ctx context.Context, req SubmitRequest) (known bool, err error) {
	if req.Type == "" {
		return false, &InvalidArgumentError{`"type" is required`}
	}
	if len(req.Input) > 0 && !json.Valid(req.Input) {
		return false, &InvalidArgumentError{`"input" is not valid JSON`}
	}
	if d := jsonDepth(req.Input); d > s.cfg.MaxJSONDepth {
		return false, &InvalidArgumentError{fmt.Sprintf(`"input" nests %d deep; at most %d is accepted`, d, s.cfg.MaxJSONDepth)}
	}
	t, err := s.catalog.lookup(ctx, req.Type)
	if errors.Is(err, jobs.ErrUnknownType) {
		return false, &UnknownTypeError{Type: req.Type}
	}
	if err != nil {
		return false, unavailable(err)
	}
	if err := t.Validate(req.Input); err != nil {
		return true, &InvalidInputError{Type: req.Type, Err: err}
	}
	return true, nil
}

// MaxBatch is the most jobs one SubmitMany takes.
const MaxBatch = 1000

// BatchItem is one job of a batch submit: a SubmitRequest and, if the
// caller wants its submit to be idempotent, its own idempotency key.
type BatchItem struct {
	SubmitRequest
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// BatchResult is the outcome of one BatchItem: the job's snapshot (with
// Replayed when an idempotency key named a job submitted before), or the
// error that kept it from being submitted.
type BatchResult struct {
	Job      jobs.Snapshot
	Replayed bool
	Err      error
}

// SubmitMany submits each item as Submit does, and returns one result per
// item, in order. Items are checked one by one; the good ones are stored
// together, pipelined (jobs.EnqueueMany: each is its own durable, fenced
// write, acknowledged by JetStream before SubmitMany returns), so a bad
// or failed item never keeps the others from being submitted. It fails as
// a whole only for a batch of more than MaxBatch items.
func (s *Service) SubmitMany(ctx context.Context, who Caller, items []BatchItem) ([]BatchResult, error) {
	if len(items) > MaxBatch {
		return nil, &InvalidArgumentError{fmt.Sprintf("a batch holds at most %d jobs; this one has %d", MaxBatch, len(items))}
	}
	results := make([]BatchResult, len(items))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), submitTimeout)
	defer cancel()
	connected := s.nc.IsConnected()
	msgs := make([]*nats.Msg, len(items))
	reqs := make([]jobs.Request, len(items))
	idem := make([]string, len(items))
	known := make([]bool, len(items))
	defer func() {
		for i, r := range results {
			s.metrics.submitted(items[i].Type, known[i], r.Replayed, r.Err)
		}
	}()
	now := time.Now().UTC()
	for i, it := range items {
		r := &results[i]
		if known[i], r.Err = s.check(ctx, it.SubmitRequest); r.Err != nil {
			continue
		}
		timing, err := timingOf(it.SubmitRequest, now, s.maxDelay())
		if err != nil {
			r.Err = err
			continue
		}
		if !connected {
			r.Err = unavailable(nats.ErrConnectionClosed)
			continue
		}
		id := jobs.NewID(now)
		if it.IdempotencyKey != "" {
			existing, key, err := s.claimIdempotencyKey(ctx, who.Owner+"\x00"+it.IdempotencyKey, it.SubmitRequest, id)
			if err != nil {
				r.Err = err
				continue
			}
			if existing != "" {
				r.Job, r.Replayed, r.Err = s.replay(ctx, existing)
				continue
			}
			idem[i] = key
		}
		reqs[i] = timing.apply(jobs.Request{ID: id, Type: it.Type, Input: it.Input, CreatedAt: now, Owner: who.Owner})
		if msgs[i], r.Err = jobs.RequestMsg(reqs[i]); r.Err == nil {
			if err := jobs.WriteTimers(ctx, s.js, reqs[i]); err != nil { // before the request, as Enqueue does
				r.Err = unavailable(err)
			}
		}
		if r.Err != nil {
			msgs[i] = nil
			s.forgetIdempotencyKey(idem[i])
		}
	}
	for i, err := range jobs.EnqueueMany(ctx, s.js, msgs) {
		switch {
		case msgs[i] == nil:
		case err != nil:
			results[i].Err = unavailable(err)
			s.forgetIdempotencyKey(idem[i])
		default:
			results[i].Job = jobs.SnapshotOf(reqs[i].Queued())
		}
	}
	return results, nil
}

// replay is the answer to a submit whose idempotency key names job id,
// submitted before.
func (s *Service) replay(ctx context.Context, id string) (jobs.Snapshot, bool, error) {
	ev, _, err := jobs.State(ctx, s.streams.Events, s.streams.Records, id)
	if errors.Is(err, jobs.ErrNotFound) {
		// The first request with this key is still being stored.
		return jobs.Snapshot{}, false, ErrInProgress
	}
	if err != nil {
		return jobs.Snapshot{}, false, unavailable(err)
	}
	return jobs.SnapshotOf(ev), true, nil
}

// idempotencyRecord is stored per key: the job it made and a hash of the
// request, so a key reused for a different request is refused.
type idempotencyRecord struct {
	JobID       string `json:"job_id"`
	RequestHash string `json:"request_hash"`
}

// claimIdempotencyKey records key → id. If the key was used before it
// returns the job id stored then. It also returns the bucket key used.
func (s *Service) claimIdempotencyKey(ctx context.Context, key string, req SubmitRequest, id string) (existing, bucketKey string, err error) {
	if _, k, _ := strings.Cut(key, "\x00"); len(k) > 255 || strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return "", "", ErrInvalidIdempotencyKey
	}
	sum := sha256.Sum256([]byte(key))
	k := hex.EncodeToString(sum[:])
	canon, _ := json.Marshal(req)
	reqSum := sha256.Sum256(canon)
	rec := idempotencyRecord{JobID: id, RequestHash: hex.EncodeToString(reqSum[:])}
	b, _ := json.Marshal(rec)
	_, err = s.streams.Idempotency.Create(ctx, k, b)
	if err == nil {
		return "", k, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", "", unavailable(err)
	}
	e, err := s.streams.Idempotency.Get(ctx, k)
	if err != nil {
		return "", "", unavailable(err)
	}
	var prev idempotencyRecord
	if err := json.Unmarshal(e.Value(), &prev); err != nil || jobs.ValidateID(prev.JobID) != nil {
		return "", "", ErrIdempotencyRecordDamaged
	}
	if prev.RequestHash != rec.RequestHash {
		return "", "", ErrIdempotencyKeyReused
	}
	return prev.JobID, k, nil
}

// forgetIdempotencyKey drops a claimed key of a submission that failed, so
// that the client's retry can succeed.
func (s *Service) forgetIdempotencyKey(bucketKey string) {
	if bucketKey == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.streams.Idempotency.Delete(ctx, bucketKey)
}

// jsonDepth is how deeply b's arrays and objects nest.
func jsonDepth(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

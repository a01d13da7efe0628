package jobclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Submit stores a new job of type typ with the given input and returns its
// "queued" event (seq 1); the job's id is in Event.JobID.
//
// input is encoded with encoding/json; pass a json.RawMessage for JSON you
// already have (a []byte would be encoded as a base64 string). A nil input
// means no input, checked against the schema as the empty object {}, as
// the gateway does.
//
// Before anything is stored, Submit checks that a runner registered typ
// (otherwise the error wraps ErrUnknownType, and also jobs.ErrInvalidID
// when typ is not a safe token) and that the input matches the type's
// input schema (otherwise the error wraps ErrInvalidInput and says why).
// Then it calls jobs.Enqueue with a new id: when Submit returns without an
// error the job is stored and will run.
//
// Options say when and how urgently: RunAt or Delay (the job is
// "scheduled" until then), ExpiresAt, Priority.
func (c *Client) Submit(ctx context.Context, typ string, input any, opts ...SubmitOption) (jobs.Event, error) {
	now := time.Now()
	req, err := c.request(ctx, typ, input, now, nil)
	if err == nil {
		req, err = withOptions(req, now, opts)
	}
	if err != nil {
		return jobs.Event{}, err
	}
	ev, err := jobs.Enqueue(ctx, c.js, req)
	if err != nil {
		return jobs.Event{}, fmt.Errorf("submit %s job: %w", typ, err)
	}
	return ev, nil
}

// Job is one job of a SubmitMany: its type, input and options, as Submit
// takes them.
type Job struct {
	Type    string
	Input   any
	Options []SubmitOption
}

// SubmitOption says when or how urgently a job runs.
type SubmitOption func(*submitOptions)

type submitOptions struct {
	runAt, expiresAt time.Time
	delay            time.Duration
	priority         int
}

// RunAt runs the job no earlier than t: it is "scheduled" until then (a
// JetStream message schedule queues it when due).
func RunAt(t time.Time) SubmitOption { return func(o *submitOptions) { o.runAt = t } }

// Delay runs the job after d.
func Delay(d time.Duration) SubmitOption { return func(o *submitOptions) { o.delay = d } }

// ExpiresAt ends the job "canceled" (error code "expired") if it has not
// started by t, instead of running late.
func ExpiresAt(t time.Time) SubmitOption { return func(o *submitOptions) { o.expiresAt = t } }

// Priority is jobs.PriorityHigh, jobs.PriorityNormal (the default) or
// jobs.PriorityLow: a runner with a free slot takes higher priorities first.
func Priority(p int) SubmitOption { return func(o *submitOptions) { o.priority = p } }

// withOptions applies opts to req, checked as the gateway checks them.
func withOptions(req jobs.Request, now time.Time, opts []SubmitOption) (jobs.Request, error) {
	var o submitOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.delay < 0 || !o.runAt.IsZero() && o.delay != 0 {
		return req, fmt.Errorf("%w: give RunAt or a positive Delay, not both", ErrInvalidInput)
	}
	if o.delay > 0 {
		o.runAt = now.Add(o.delay)
	}
	if !o.runAt.IsZero() {
		if o.runAt.Before(now.Add(-time.Second)) {
			return req, fmt.Errorf("%w: RunAt %s is in the past", ErrInvalidInput, o.runAt.Format(time.RFC3339))
		}
		at := o.runAt.UTC()
		req.RunAt, req.Deferred = &at, at.After(now)
	}
	if !o.expiresAt.IsZero() {
		if !o.expiresAt.After(now) || req.RunAt != nil && !o.expiresAt.After(*req.RunAt) {
			return req, fmt.Errorf("%w: ExpiresAt must be after the job is due", ErrInvalidInput)
		}
		exp := o.expiresAt.UTC()
		req.ExpiresAt = &exp
	}
	if o.priority != 0 && (o.priority < jobs.PriorityHigh || o.priority > jobs.PriorityLow) {
		return req, fmt.Errorf("%w: priority must be 1 (high), 2 (normal) or 3 (low), not %d", ErrInvalidInput, o.priority)
	}
	req.Priority = o.priority
	return req, nil
}

// Submitted is the outcome of one job of a SubmitMany: its "queued" event
// (the job's id is in Event.JobID), or why it was not submitted.
type Submitted struct {
	Event jobs.Event
	Err   error
}

// SubmitMany submits many jobs at once and returns one outcome per job, in
// order. Each job is checked as Submit checks it; the good ones are stored
// together, pipelined (jobs.EnqueueMany: each its own durable write,
// acknowledged by JetStream before SubmitMany returns), so a batch costs
// about one round trip instead of one per job, and a bad job never keeps
// the others from being submitted.
func (c *Client) SubmitMany(ctx context.Context, batch []Job) []Submitted {
	out := make([]Submitted, len(batch))
	msgs := make([]*nats.Msg, len(batch))
	reqs := make([]jobs.Request, len(batch))
	types := map[string]jobs.RegisteredType{}
	now := time.Now()
	for i, j := range batch {
		req, err := c.request(ctx, j.Type, j.Input, now, types)
		if err == nil {
			req, err = withOptions(req, now, j.Options)
		}
		if err == nil {
			msgs[i], err = jobs.RequestMsg(req)
		}
		if err == nil {
			err = jobs.WriteTimers(ctx, c.js, req) // before the request, as Enqueue does
		}
		if err != nil {
			msgs[i] = nil
		}
		reqs[i], out[i].Err = req, err
	}
	for i, err := range jobs.EnqueueMany(ctx, c.js, msgs) {
		switch {
		case msgs[i] == nil:
		case err != nil:
			out[i].Err = fmt.Errorf("submit %s job: %w", batch[i].Type, err)
		default:
			out[i].Event = reqs[i].Queued()
		}
	}
	return out
}

// request checks a job of type typ with input (see Submit) and returns its
// request with a new id. types, if not nil, keeps the registrations read.
func (c *Client) request(ctx context.Context, typ string, input any, now time.Time, types map[string]jobs.RegisteredType) (jobs.Request, error) {
	if err := jobs.ValidateType(typ); err != nil {
		return jobs.Request{}, fmt.Errorf("jobclient: %w: %w", ErrUnknownType, err)
	}
	jt, ok := types[typ]
	if !ok {
		var err error
		if jt, err = c.registeredType(ctx, typ); err != nil {
			return jobs.Request{}, err
		}
		if types != nil {
			types[typ] = jt
		}
	}
	data, err := encodeInput(input)
	if err != nil {
		return jobs.Request{}, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if err := jt.Validate(data); err != nil {
		return jobs.Request{}, fmt.Errorf("%w for job type %s: %v", ErrInvalidInput, typ, err)
	}
	req := jobs.Request{ID: jobs.NewID(now), Type: typ, Input: data, CreatedAt: now}
	// An oversized request would be refused by the server with a less
	// clear error: refuse it here.
	if b, err := json.Marshal(req); err == nil && int64(len(b)) > c.nc.MaxPayload() {
		return jobs.Request{}, fmt.Errorf("%w: the job request is %d bytes, the NATS server takes at most %d per message",
			ErrInvalidInput, len(b), c.nc.MaxPayload())
	}
	return req, nil
}

// registeredType reads typ's registration from the types bucket (every
// time, so a type that is no longer registered is refused) with its
// compiled input schema.
func (c *Client) registeredType(ctx context.Context, typ string) (jobs.RegisteredType, error) {
	r, err := c.typeReader(ctx)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return jobs.RegisteredType{}, fmt.Errorf("jobclient: %w %q: no runner has registered any job type (bucket %s does not exist)", ErrUnknownType, typ, jobs.TypesBucket)
	}
	if err != nil {
		return jobs.RegisteredType{}, fmt.Errorf("jobclient: look up bucket %s: %w", jobs.TypesBucket, err)
	}
	jt, err := r.Get(ctx, typ)
	if err != nil {
		return jobs.RegisteredType{}, fmt.Errorf("jobclient: %w", err)
	}
	return jt, nil
}

// encodeInput returns input as JSON, or nil for no input.
func encodeInput(input any) (json.RawMessage, error) {
	if input == nil {
		return nil, nil
	}
	if raw, ok := input.(json.RawMessage); ok && len(raw) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(input)
	if err != nil {
		return nil, err
	}
	return b, nil
}

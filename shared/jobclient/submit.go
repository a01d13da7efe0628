package jobclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
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
func (c *Client) Submit(ctx context.Context, typ string, input any) (jobs.Event, error) {
	if err := jobs.ValidateType(typ); err != nil {
		return jobs.Event{}, fmt.Errorf("jobclient: %w: %w", ErrUnknownType, err)
	}
	jt, err := c.registeredType(ctx, typ)
	if err != nil {
		return jobs.Event{}, err
	}
	data, err := encodeInput(input)
	if err != nil {
		return jobs.Event{}, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if err := jt.Validate(data); err != nil {
		return jobs.Event{}, fmt.Errorf("%w for job type %s: %v", ErrInvalidInput, typ, err)
	}
	now := time.Now()
	req := jobs.Request{ID: jobs.NewID(now), Type: typ, Input: data, CreatedAt: now}
	// An oversized request would be refused by the server with a less
	// clear error: refuse it here.
	if b, err := json.Marshal(req); err == nil && int64(len(b)) > c.nc.MaxPayload() {
		return jobs.Event{}, fmt.Errorf("%w: the job request is %d bytes, the NATS server takes at most %d per message",
			ErrInvalidInput, len(b), c.nc.MaxPayload())
	}
	ev, err := jobs.Enqueue(ctx, c.js, req)
	if err != nil {
		return jobs.Event{}, fmt.Errorf("submit %s job: %w", typ, err)
	}
	return ev, nil
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

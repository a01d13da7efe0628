// Package jobclient is a small Go client of jobwire for other services. It
// talks to NATS JetStream directly, following the contract in package jobs,
// not the gateway's HTTP API:
//
//   - Submit checks the job type against the types runners registered in
//     the JOBWIRE_TYPES bucket, validates the input against the type's JSON
//     Schema, and stores the job (its "queued" event, then its request).
//   - Get reads a job's current state: its last message in JOBS, or,
//     once it ended, the final event its end record on JOBS_RECORDS names.
//   - Watch replays a job's events from a sequence number and follows it
//     live to its end, gap-free and duplicate-free, across NATS reconnects.
//
// The client never creates streams or buckets: the gateway and the runners
// do that at start-up. A Client is safe for concurrent use.
package jobclient

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors returned (wrapped) by the client. Besides these, Get and Watch
// return jobs.ErrNotFound for a job that has no stored events, and every
// method returns an error wrapping jobs.ErrInvalidID for a job id or type
// name that is not a safe subject token.
var (
	// ErrUnknownType means no runner registered the job type in the
	// JOBWIRE_TYPES bucket (or registered it with an unusable schema). It
	// is jobs.ErrUnknownType: the gateway refuses the same types.
	ErrUnknownType = jobs.ErrUnknownType
	// ErrInvalidInput means the input does not encode to JSON, does not
	// match the type's input schema (the error says why), or is too large
	// for one NATS message.
	ErrInvalidInput = errors.New("jobclient: invalid input")
	// ErrGap means a job's history has a hole: the event after the last
	// one a Watch yielded is no longer stored in JOBS (removed by
	// the stream's age or per-job limits while the watch lagged behind),
	// so the watch cannot go on without a gap. See Client.Watch.
	ErrGap = errors.New("jobclient: events missing from the job's history")
)

// Client submits, reads and watches jobwire jobs. Make one with New.
type Client struct {
	nc *nats.Conn
	js jetstream.JetStream

	mu      sync.Mutex
	events  jetstream.Stream // JOBS, looked up on first use
	records jetstream.Stream // JOBS_RECORDS, looked up on first use
	types   *jobs.TypeReader // JOBWIRE_TYPES, looked up on first use
}

// New returns a client that uses connection nc. It does not talk to the
// server: the streams and buckets are looked up when first needed, so a
// client can be made before any gateway or runner has created them.
// The caller keeps owning nc (and closes it).
func New(nc *nats.Conn) (*Client, error) {
	if nc == nil {
		return nil, errors.New("jobclient: nil NATS connection")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jobclient: %w", err)
	}
	return &Client{nc: nc, js: js}, nil
}

// Get returns the current state of job id: its last stored event, or once
// it ended its first final event (anything stored after that is ignored,
// see jobs.State). It returns an error wrapping jobs.ErrInvalidID for a malformed id and
// jobs.ErrNotFound for a job with no stored events (never submitted, or
// aged out of the events stream).
func (c *Client) Get(ctx context.Context, id string) (jobs.Event, error) {
	if err := jobs.ValidateID(id); err != nil {
		return jobs.Event{}, err
	}
	events, err := c.eventsStream(ctx)
	if err != nil {
		return jobs.Event{}, err
	}
	records, err := c.stream(ctx, jobs.RecordsStream, &c.records)
	if err != nil {
		return jobs.Event{}, err
	}
	ev, _, err := jobs.State(ctx, events, records, id)
	if err != nil {
		return jobs.Event{}, fmt.Errorf("get job %s: %w", id, err)
	}
	return ev, nil
}

// eventsStream returns the JOBS stream, looking it up once.
func (c *Client) eventsStream(ctx context.Context) (jetstream.Stream, error) {
	return c.stream(ctx, jobs.Stream, &c.events)
}

// stream returns stream name, looking it up once into *slot (guarded by
// c.mu).
func (c *Client) stream(ctx context.Context, name string, slot *jetstream.Stream) (jetstream.Stream, error) {
	c.mu.Lock()
	s := *slot
	c.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := c.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("jobclient: stream %s does not exist (a jobwire gateway or runner creates it): %w", name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("jobclient: look up stream %s: %w", name, err)
	}
	c.mu.Lock()
	*slot = s
	c.mu.Unlock()
	return s, nil
}

// typeReader returns the reader of the JOBWIRE_TYPES bucket, looking the
// bucket up once.
func (c *Client) typeReader(ctx context.Context) (*jobs.TypeReader, error) {
	c.mu.Lock()
	r := c.types
	c.mu.Unlock()
	if r != nil {
		return r, nil
	}
	kv, err := c.js.KeyValue(ctx, jobs.TypesBucket)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.types == nil {
		c.types = jobs.NewTypeReader(kv)
	}
	r = c.types
	c.mu.Unlock()
	return r, nil
}

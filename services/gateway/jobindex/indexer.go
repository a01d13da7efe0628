// Package jobindex keeps and reads the job index (shared/jobs/index.go):
// each owner's list of jobs and the list of every job, newest first, and
// the number of jobs in each status. The indexer follows every message of
// the jobs stream through a durable consumer that the gateways share, so
// an update it misses (a gateway that dies halfway) comes again and is
// applied then; every write it makes is idempotent. A list entry holds a
// job's final state once the job has ended (a final event is never
// replaced, so the entry cannot go wrong), and the job is also listed in
// its lists of jobs ended in that status; a job not ended yet is read
// from the jobs stream, so a list never shows a status the job has left.
// The reader reads a page of a list in a few requests whatever the number
// of jobs stored, and a page of ended jobs in two.
package jobindex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jobwire/jobwire/internal/consumeloop"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Indexer keeps the index from the jobs stream's messages.
type Indexer struct {
	js      jetstream.JetStream
	cons    jetstream.Consumer
	state   jetstream.Stream // IndexStream, for the indexer's records
	records jetstream.Stream // RecordsStream, for the jobs' end records
	log     *slog.Logger
	workers int
	metrics *indexerMetrics
}

// workers is how many messages one indexer applies at once (each job's on
// the same worker, in order).
const defaultWorkers = 8

// New makes an indexer on streams (Index and Indexer must be set).
func New(js jetstream.JetStream, streams *jobs.Streams, log *slog.Logger) *Indexer {
	return &Indexer{js: js, cons: streams.Indexer, state: streams.Index, records: streams.Records, log: log, workers: defaultWorkers, metrics: newIndexerMetrics()}
}

// Metrics are the indexer's metrics.
func (ix *Indexer) Metrics() prometheus.Collector { return ix.metrics.all }

// Run indexes until ctx ends (see consumeloop: each job's messages on
// the same worker, in order; the consumer looked up again if it goes away).
func (ix *Indexer) Run(ctx context.Context) {
	consumeloop.Loop{
		JS: ix.js, Stream: jobs.Stream, Consumer: ix.cons, Name: jobs.IndexerConsumer, Workers: ix.workers, Log: ix.log,
		Route:  ix.route,
		Handle: ix.apply,
	}.Run(ctx)
}

// positions are a job's positions in its lists, asked for before they are
// needed (askPositions); a new job's as its request was read: the counters' answers come in the order of the
// requests (one connection's publishes are stored in order), so a
// gateway's indexer numbers jobs in the order they were stored, whichever
// worker applies them. A job indexed before (its request came again)
// leaves them unused: a hole, which lists skip.
type positions struct {
	all, owner jetstream.PubAckFuture // owner: nil for a job without owner
}

// route sends each job's messages to the same worker, and asks for a new
// job's positions in stream order (see positions).
func (ix *Indexer) route(m jetstream.Msg) (string, any) {
	_, id, _ := jobs.JobOfSubject(m.Subject())
	if !jobs.IsRequestSubject(m.Subject()) {
		return id, nil
	}
	var head struct {
		Owner string `json:"owner"`
		Seq   uint64 `json:"seq"`
	}
	if json.Unmarshal(m.Data(), &head) != nil || head.Seq != 1 {
		return id, nil // a delayed job's request when due: it has its positions
	}
	if md, err := m.Metadata(); err != nil || md.NumDelivered > 1 {
		return id, nil // read before: it may be indexed already
	}
	return id, ix.askPositions(head.Owner, "")
}

// eventHead is what the indexer reads of an event.
type eventHead struct {
	JobID     string      `json:"job_id"`
	Type      string      `json:"type"`
	Owner     string      `json:"owner"`
	Seq       uint64      `json:"seq"`
	Kind      jobs.Kind   `json:"kind"`
	Status    jobs.Status `json:"status"`
	Time      time.Time   `json:"time"`
	CreatedAt *time.Time  `json:"created_at"`

	waitForRequest bool            // a job not indexed yet waits for its request
	positions      *positions      // asked for as its request was read, if it is one
	data           json.RawMessage // the whole event, for the entries of an ended job
	streamSeq      uint64          // where it is stored in Stream
	mayWait        bool            // not delivered often yet: it may be put back to wait
}

// maxWaitsForRequest is how often an event of a job not indexed yet is
// put back to wait for the job's request.
const maxWaitsForRequest = 5

// errNoRequestYet: the event's job is not indexed yet, and its request
// should come first.
var errNoRequestYet = errors.New("the job's request is not indexed yet")

// errNoEndYet: the event is a job's final event, and the job's end record
// (written just after it) is not there yet to confirm it.
var errNoEndYet = errors.New("the job's end record is not stored yet")

// apply indexes one message and acks it, or naks it for a later try.
func (ix *Indexer) apply(ctx context.Context, m jetstream.Msg, routed any) {
	typ, id, ok := jobs.JobOfSubject(m.Subject())
	var ev eventHead
	if !ok || json.Unmarshal(m.Data(), &ev) != nil || ev.JobID != id || ev.Seq == 0 || !ev.Status.Valid() {
		ix.metrics.skipped.Inc()
		_ = m.Term() // not a job's event: nothing to index
		return
	}
	if ev.Kind == jobs.KindProgress || ev.Kind == jobs.KindLog {
		_ = m.Ack() // no change of status
		return
	}
	ev.Type = typ
	ev.data = m.Data()
	if md, err := m.Metadata(); err == nil {
		ev.streamSeq, ev.mayWait = md.Sequence.Stream, md.NumDelivered < maxWaitsForRequest
	}
	if !jobs.IsRequestSubject(m.Subject()) {
		// Only a request names a job's owner (only the gateway writes
		// requests): a job first seen through another event waits for its
		// request, and after a few tries is listed for admins only.
		ev.Owner = ""
		ev.waitForRequest = ev.mayWait
	}
	ev.positions, _ = routed.(*positions)
	if err := ix.index(ctx, ev); errors.Is(err, errNoRequestYet) || errors.Is(err, errNoEndYet) {
		_ = m.NakWithDelay(200 * time.Millisecond)
		return
	} else if err != nil {
		ix.metrics.failed.Inc()
		if ctx.Err() == nil {
			ix.log.Warn("indexer: cannot index a job's event; it comes again", "job_id", id, "seq", ev.Seq, "err", err)
		}
		_ = m.NakWithDelay(time.Second)
		return
	}
	ix.metrics.indexed.Inc()
	_ = m.Ack()
}

// errWrongLastSequence is the server's answer to a write whose expected
// last subject sequence is not the subject's.
const errWrongLastSequence = 10071

// maxRaces bounds how often one event is tried again after losing a race
// with another indexer writing the same job's record.
const maxRaces = 8

// index applies the status change ev makes: the job's record first (which
// says what has been counted), then what follows from it, idempotently.
func (ix *Indexer) index(ctx context.Context, ev eventHead) error {
	pre := ev.positions
	for range maxRaces {
		rec, recSeq, found, err := ix.record(ctx, ev.JobID)
		if err != nil {
			return err
		}
		switch {
		case found && rec.Seq > ev.Seq:
			return nil // a later event is counted already
		case found && rec.Seq == ev.Seq:
			return ix.effects(ctx, rec, ev) // counted before, maybe not all written
		case found && rec.Status.Terminal():
			// An event stored after the job's final one (a runner's
			// credentials can write events): once the end record names
			// another event, it is not the job's state (jobs.State), so
			// it changes no count and no list.
			end, ended, err := jobs.ReadEnd(ctx, ix.records, ev.JobID)
			if err != nil {
				return err
			}
			if ended && end.Seq != ev.streamSeq {
				return nil
			}
		}
		if !found && ev.waitForRequest {
			return errNoRequestYet
		}
		next := jobs.IndexState{ID: ev.JobID, Seq: ev.Seq, Status: ev.Status, Owner: ev.Owner, Type: ev.Type, Time: ev.Time}
		if found {
			next.Prev, next.OwnerPos, next.AllPos, next.Created = rec.Status, rec.OwnerPos, rec.AllPos, rec.Created
			next.Owner = rec.Owner // the request's, whatever later events say
			if rec.Status == next.Status {
				next.AllEndedPos, next.OwnerEndedPos = rec.AllEndedPos, rec.OwnerEndedPos
			}
		} else {
			next.Created = ev.Time
			if ev.CreatedAt != nil {
				next.Created = *ev.CreatedAt
			}
			next.AllPos, next.OwnerPos, err = ix.newPositions(ctx, ev.Owner, "", pre)
			pre = nil // answered once: a race lost with another indexer asks anew
			if err != nil {
				return err
			}
		}
		if next.Status.Terminal() && next.AllEndedPos == 0 {
			next.AllEndedPos, next.OwnerEndedPos, err = ix.newPositions(ctx, next.Owner, next.Status, ix.askPositions(next.Owner, next.Status))
			if err != nil {
				return err
			}
		}
		data, _ := json.Marshal(next)
		_, err = ix.js.Publish(ctx, jobs.IndexStateSubject(ev.JobID), data, jetstream.WithExpectLastSequencePerSubject(recSeq))
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == errWrongLastSequence {
			continue // another indexer wrote the record first: read it again
		}
		if err != nil {
			return err
		}
		return ix.effects(ctx, next, ev)
	}
	return fmt.Errorf("job %s: its record kept changing", ev.JobID)
}

// record reads the indexer's record of job id and its stream sequence.
func (ix *Indexer) record(ctx context.Context, id string) (rec jobs.IndexState, seq uint64, found bool, err error) {
	m, err := ix.state.GetLastMsgForSubject(ctx, jobs.IndexStateSubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return rec, 0, false, nil
	}
	if err != nil {
		return rec, 0, false, err
	}
	if err := json.Unmarshal(m.Data, &rec); err != nil {
		return rec, 0, false, fmt.Errorf("job %s: index record is not valid: %w", id, err)
	}
	return rec, m.Sequence, true, nil
}

// askPositions asks for a job's next positions, without waiting for the
// answers: in everyone's list and, for a job with an owner, its owner's;
// of every job (st ""), or of the jobs ended in st. A request that could
// not be sent is made again by newPositions.
func (ix *Indexer) askPositions(owner string, st jobs.Status) *positions {
	p := &positions{}
	if f, err := ix.js.PublishMsgAsync(counterMsg(jobs.AllJobsScope.Ended(st).PositionCounter(), "+1", "")); err == nil {
		p.all = f
	}
	if owner != "" {
		if f, err := ix.js.PublishMsgAsync(counterMsg(jobs.OwnerScope(owner).Ended(st).PositionCounter(), "+1", "")); err == nil {
			p.owner = f
		}
	}
	return p
}

// newPositions is a job's new positions in the lists askPositions names:
// the answers to p (nil: none asked for), or new ones.
func (ix *Indexer) newPositions(ctx context.Context, owner string, st jobs.Status, p *positions) (all, own uint64, err error) {
	if p == nil {
		p = &positions{}
	}
	if all, err = ix.position(ctx, p.all, jobs.AllJobsScope.Ended(st).PositionCounter()); err != nil || owner == "" {
		return all, 0, err
	}
	own, err = ix.position(ctx, p.owner, jobs.OwnerScope(owner).Ended(st).PositionCounter())
	return all, own, err
}

// position is the value of an increment of counter asked for before (f),
// or of a new one.
func (ix *Indexer) position(ctx context.Context, f jetstream.PubAckFuture, counter string) (uint64, error) {
	if f == nil {
		return ix.increment(ctx, counter)
	}
	select {
	case ack := <-f.Ok():
		n, err := strconv.ParseUint(ack.Value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("counter %s answered %q", counter, ack.Value)
		}
		return n, nil
	case err := <-f.Err():
		return 0, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// increment adds one to counter and returns its new value.
func (ix *Indexer) increment(ctx context.Context, counter string) (uint64, error) {
	ack, err := ix.js.PublishMsg(ctx, counterMsg(counter, "+1", ""))
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(ack.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("counter %s answered %q", counter, ack.Value)
	}
	return n, nil
}

func counterMsg(subject, incr, msgID string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set("Nats-Incr", incr)
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	return m
}

// effects writes what rec, once recorded, means: the status counters
// moved from rec.Prev to rec.Status, a final status counted in its
// minute, for a job seen for the first time its list entries, and for a
// job that has ended its entries again with its state from its final
// event (ev) in them, and the same entries in the lists of jobs ended so (ListScope.Ended),
// once the job's end record names that event (a final event written after
// the job ended, by a runner's credentials or by hand, is never listed;
// the end record comes just after the final event, so ev is put back to
// wait for it a few times). Each counter update carries a message id made of the
// job, its event and what it is: written again (the event came again
// after a failure), it is dropped as a duplicate. Entries carry no
// header (a direct get answers a message with headers much more slowly):
// writing one again writes the same.
func (ix *Indexer) effects(ctx context.Context, rec jobs.IndexState, ev eventHead) error {
	var msgs []*nats.Msg
	scopes := []jobs.ListScope{jobs.AllJobsScope}
	positions, ended := []uint64{rec.AllPos}, []uint64{rec.AllEndedPos}
	if rec.Owner != "" {
		scopes, positions, ended = append(scopes, jobs.OwnerScope(rec.Owner)), append(positions, rec.OwnerPos), append(ended, rec.OwnerEndedPos)
	}
	entry := jobs.IndexEntry{ID: rec.ID, Type: rec.Type, CreatedAt: rec.Created}
	var wait error
	if rec.Status.Terminal() {
		end, found, err := jobs.ReadEnd(ctx, ix.records, rec.ID)
		switch {
		case err != nil:
			return err
		case found && end.Seq == ev.streamSeq:
			var final jobs.Event
			if err := json.Unmarshal(ev.data, &final); err != nil {
				return fmt.Errorf("job %s: final event: %w", rec.ID, err)
			}
			l := listed(final) // as a page lists it
			entry.Snapshot, entry.Status, entry.EndedAt = l.JSON, rec.Status, l.Ended.UTC()
		case !found && ev.mayWait:
			wait = errNoEndYet // the rest now, the entries when it comes again
		}
	}
	data, _ := json.Marshal(entry)
	for i, scope := range scopes {
		msgID := rec.ID + "." + strconv.FormatUint(rec.Seq, 10) + "." + strconv.Itoa(i) + "."
		if rec.Prev != rec.Status {
			if rec.Prev != "" {
				msgs = append(msgs, counterMsg(scope.StatusCounter(rec.Type, rec.Prev), "-1", msgID+"dec"))
			}
			msgs = append(msgs, counterMsg(scope.StatusCounter(rec.Type, rec.Status), "+1", msgID+"inc"))
		}
		if rec.Status.Terminal() {
			minute := rec.Time.UTC().Truncate(time.Minute)
			msgs = append(msgs, counterMsg(scope.MinuteCounter(rec.Type, minute, rec.Status), "+1", msgID+"min"))
		}
		if wait != nil {
			continue
		}
		if positions[i] > 0 && (rec.Prev == "" || entry.Snapshot != nil) {
			msgs = append(msgs, &nats.Msg{Subject: scope.IndexSubject(positions[i]), Data: data})
		}
		if ended[i] > 0 && entry.Snapshot != nil {
			msgs = append(msgs, &nats.Msg{Subject: scope.Ended(rec.Status).IndexSubject(ended[i]), Data: data})
		}
	}
	if err := ix.publishAll(ctx, msgs); err != nil {
		return err
	}
	return wait
}

// publishAll publishes msgs at once and waits for every ack.
func (ix *Indexer) publishAll(ctx context.Context, msgs []*nats.Msg) error {
	acks := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := ix.js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

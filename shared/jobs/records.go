package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A job's end record is a fact the server lets be written once: where it
// ended (written by whoever stored its final event, on jobwire.ends.<id>).
// RecordsStream keeps one message per subject and refuses a second one
// (DiscardNewPerSubject), so no later write, not even one with a runner's
// credentials, can change it. Who owns a job is its request's Owner (see
// Request): runners may not write requests.

// OwnerRecord is who owns a job, read from its request (ReadOwner).
type OwnerRecord struct {
	Owner     string    `json:"owner"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
}

// EndRecord names a job's final event: its stream sequence in Stream and
// its status, and whose job it was (the owner its events carry), which
// stays known after the job's request and events have aged out. A job's
// state is that event; anything stored after it is ignored.
type EndRecord struct {
	Seq    uint64    `json:"seq"`
	Status Status    `json:"status"`
	Time   time.Time `json:"time"`
	Owner  string    `json:"owner,omitempty"`
}

// ErrRecorded means a record of the job exists already (the first write
// won).
var ErrRecorded = errors.New("job record exists already")

// RecordEnd stores that job ev.JobID ended with ev, stored at stream
// sequence seq. It fails with ErrRecorded if the job's end is recorded
// already (by this writer, whose answer was lost, or by another).
func RecordEnd(ctx context.Context, js jetstream.Publisher, ev Event, seq uint64) error {
	m, err := EndMsg(ev, seq)
	if err != nil {
		return err
	}
	_, err = js.PublishMsg(ctx, m)
	if err != nil {
		return fmt.Errorf("%w: %s", EndRecordError(err), m.Subject)
	}
	return nil
}

// EndMsg is the end record RecordEnd stores, as a message to publish.
func EndMsg(ev Event, seq uint64) (*nats.Msg, error) {
	if !ev.Status.Terminal() || seq == 0 {
		return nil, fmt.Errorf("job %s: only a stored final event ends a job (status %s, seq %d)", ev.JobID, ev.Status, seq)
	}
	if err := ValidateID(ev.JobID); err != nil {
		return nil, err
	}
	data, err := json.Marshal(EndRecord{Seq: seq, Status: ev.Status, Time: ev.Time.UTC(), Owner: ev.Owner})
	if err != nil {
		return nil, err
	}
	// Expecting an empty subject gives an honest second writer a clear
	// answer; the stream refuses a second message even without it.
	h := nats.Header{jetstream.ExpectedStreamHeader: {RecordsStream}, jetstream.ExpectedLastSubjSeqHeader: {"0"}}
	return &nats.Msg{Subject: EndSubject(ev.JobID), Data: data, Header: h}, nil
}

// EndRecordError maps the error of an end record's write (an EndMsg):
// ErrRecorded when the job's end is recorded already, else err.
func EndRecordError(err error) error {
	if IsWrongLastSequence(err) || isPerSubjectLimit(err) {
		return ErrRecorded
	}
	return err
}

// isPerSubjectLimit reports whether the stream refused a message because
// its subject holds one already (DiscardNewPerSubject).
func isPerSubjectLimit(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeStreamStoreFailed
}

// jsErrCodeStreamStoreFailed is the server's error for a message the
// stream's limits refuse ("maximum messages per subject exceeded").
const jsErrCodeStreamStoreFailed = 10077

// ReadOwner reads who owns job id from its request in stream (Stream);
// ErrNotFound if it has none (never submitted, or aged out).
func ReadOwner(ctx context.Context, stream jetstream.Stream, id string) (OwnerRecord, error) {
	req, err := ReadRequest(ctx, stream, id)
	if err != nil {
		return OwnerRecord{}, err
	}
	return OwnerRecord{Owner: req.Owner, Type: req.Type, CreatedAt: req.CreatedAt}, nil
}

// ReadRequest reads job id's request from stream (Stream): its owner, type
// and input; ErrNotFound if it has none (never submitted, or aged out). It
// reads the job's first message, which is its request (or a delayed job's
// "scheduled" request): Enqueue never stores a second first request, and
// one stored around it (not jobwire's doing) changes nothing.
func ReadRequest(ctx context.Context, stream jetstream.Stream, id string) (Request, error) {
	if err := ValidateID(id); err != nil {
		return Request{}, err
	}
	m, err := firstMsg(ctx, stream, JobSubjects(id))
	if err == nil && !IsRequestSubject(m.Subject) {
		err = jetstream.ErrMsgNotFound // the job's first message is an event: its request aged out
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Request{}, ErrNotFound
	}
	if err != nil {
		return Request{}, err
	}
	var req Request
	if err := json.Unmarshal(m.Data, &req); err != nil || req.ID != id {
		return Request{}, fmt.Errorf("job %s: stored request is not valid: %v", id, err)
	}
	return req, nil
}

// RetryRecord is a job's retry record (RetrySubject): the id of the one
// job that retries it, and when that was decided.
type RetryRecord struct {
	RetriedAs string    `json:"retried_as"`
	Time      time.Time `json:"time"`
}

// RecordRetry stores that job id is retried as job newID, before that job
// is stored. RecordsStream keeps the first such record of a job and refuses
// any later one, so a job is retried at most once: it fails with
// ErrRecorded if the job's retry is recorded already (ReadRetry says as
// what).
func RecordRetry(ctx context.Context, js jetstream.Publisher, id, newID string, now time.Time) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	if err := ValidateID(newID); err != nil {
		return err
	}
	data, err := json.Marshal(RetryRecord{RetriedAs: newID, Time: now.UTC()})
	if err != nil {
		return err
	}
	h := nats.Header{jetstream.ExpectedStreamHeader: {RecordsStream}, jetstream.ExpectedLastSubjSeqHeader: {"0"}}
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: RetrySubject(id), Data: data, Header: h}); err != nil {
		return fmt.Errorf("%w: %s", EndRecordError(err), RetrySubject(id))
	}
	return nil
}

// ReadRetry reads job id's retry record; found is false if it has none.
func ReadRetry(ctx context.Context, records jetstream.Stream, id string) (rec RetryRecord, found bool, err error) {
	if err := ValidateID(id); err != nil {
		return RetryRecord{}, false, err
	}
	m, err := records.GetLastMsgForSubject(ctx, RetrySubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return RetryRecord{}, false, nil
	}
	if err != nil {
		return RetryRecord{}, false, err
	}
	if err := json.Unmarshal(m.Data, &rec); err != nil || ValidateID(rec.RetriedAs) != nil {
		return RetryRecord{}, false, fmt.Errorf("job %s: stored retry record is not valid: %v", id, err)
	}
	return rec, true, nil
}

// ReadEnd reads job id's end record; found is false if it has none.
func ReadEnd(ctx context.Context, records jetstream.Stream, id string) (rec EndRecord, found bool, err error) {
	if err := ValidateID(id); err != nil {
		return EndRecord{}, false, err
	}
	m, err := records.GetLastMsgForSubject(ctx, EndSubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return EndRecord{}, false, nil
	}
	if err != nil {
		return EndRecord{}, false, err
	}
	if err := json.Unmarshal(m.Data, &rec); err != nil {
		return EndRecord{}, false, fmt.Errorf("job %s: stored end record is not valid: %w", id, err)
	}
	return rec, true, nil
}

// State reads the current state of job id and its stream sequence: the
// final event its end record names if it ended, else its last stored
// event. It reads both at once. A final event stored after the first one,
// or any event after it, is ignored; so is an end record that does not
// name a final event of this job. It returns ErrNotFound when the job has
// no events.
func State(ctx context.Context, events, records jetstream.Stream, id string) (Event, uint64, error) {
	st, err := readState(ctx, events, records, id)
	return st.ev, st.seq, err
}

// state is a job's state event, decoded and as stored.
type state struct {
	ev   Event
	seq  uint64
	data []byte
}

func readState(ctx context.Context, events, records jetstream.Stream, id string) (state, error) {
	if err := ValidateID(id); err != nil {
		return state{}, err
	}
	type ended struct {
		rec   EndRecord
		found bool
		err   error
	}
	endc := make(chan ended, 1)
	go func() {
		rec, found, err := ReadEnd(ctx, records, id)
		endc <- ended{rec, found, err}
	}()
	last, err := lastEvent(ctx, events, id)
	end := <-endc
	switch {
	case err != nil:
		return state{}, err
	case end.err != nil:
		return state{}, end.err
	case !end.found || end.rec.Seq == last.seq:
		return last, nil
	}
	final, err := finalEventAt(ctx, events, id, end.rec.Seq)
	if err != nil {
		return last, nil // not this job's final event: a forged record
	}
	return final, nil
}

// lastEvent reads job id's last stored event.
func lastEvent(ctx context.Context, events jetstream.Stream, id string) (state, error) {
	m, err := events.GetLastMsgForSubject(ctx, JobSubjects(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return state{}, ErrNotFound
	}
	if err != nil {
		return state{}, err
	}
	var ev Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return state{}, fmt.Errorf("job %s: stored event is not valid: %w", id, err)
	}
	return state{ev, m.Sequence, m.Data}, nil
}

// finalEventAt reads job id's final event at stream sequence seq.
func finalEventAt(ctx context.Context, events jetstream.Stream, id string, seq uint64) (state, error) {
	m, err := events.GetMsg(ctx, seq)
	if err != nil {
		return state{}, err
	}
	var ev Event
	if _, sid, _ := JobOfSubject(m.Subject); sid != id || json.Unmarshal(m.Data, &ev) != nil || ev.JobID != id || !ev.Status.Terminal() {
		return state{}, fmt.Errorf("job %s: stream sequence %d is not its final event", id, seq)
	}
	return state{ev, m.Sequence, m.Data}, nil
}

// Job is what the gateway knows of a job: who owns it, its input and its
// state.
type Job struct {
	Owner OwnerRecord
	Input json.RawMessage // from its request
	State Event
	Seq   uint64 // State's stream sequence
	Data  []byte // State as stored
}

// ReadJob reads who owns job id (its request) and its state (see State)
// at once. An ended job whose request has aged out before its last events
// is owned by who its end record names (its input is then gone). A job
// without either (events written without a request: not jobwire's doing)
// has the zero OwnerRecord: nobody owns it. It returns
// ErrNotFound when the job has no stored messages.
func ReadJob(ctx context.Context, events, records jetstream.Stream, id string) (Job, error) {
	if err := ValidateID(id); err != nil {
		return Job{}, err
	}
	type owned struct {
		req Request
		err error
	}
	ownerc := make(chan owned, 1)
	go func() {
		req, err := ReadRequest(ctx, events, id)
		ownerc <- owned{req, err}
	}()
	st, err := readState(ctx, events, records, id)
	owner := <-ownerc
	if err != nil {
		return Job{}, err
	}
	if owner.err != nil && !errors.Is(owner.err, ErrNotFound) {
		return Job{}, owner.err
	}
	r := owner.req
	if owner.err != nil && st.ev.Status.Terminal() {
		// The request is the job's oldest message, so it ages out first:
		// while the later events stay, the end record (which outlives
		// them all) says whose job it was.
		end, found, err := ReadEnd(ctx, records, id)
		if err != nil {
			return Job{}, err
		}
		if found {
			created := time.Time{}
			if st.ev.CreatedAt != nil {
				created = *st.ev.CreatedAt
			}
			r = Request{Owner: end.Owner, Type: st.ev.Type, CreatedAt: created}
		}
	}
	return Job{Owner: OwnerRecord{Owner: r.Owner, Type: r.Type, CreatedAt: r.CreatedAt}, Input: r.Input, State: st.ev, Seq: st.seq, Data: st.data}, nil
}

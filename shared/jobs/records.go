package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A job's records are facts the server lets be written once: who owns the
// job (written by the gateway at submit, on jobwire.owners.<id>) and where
// it ended (written by whoever stored its final event, on
// jobwire.ends.<id>). RecordsStream keeps one message per subject and
// refuses a second one (DiscardNewPerSubject), so no later write, not even
// one with a runner's credentials, can change them.

// OwnerRecord is stored once per job at submit.
type OwnerRecord struct {
	Owner     string    `json:"owner"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
}

// EndRecord names a job's final event: its stream sequence in EventsStream
// and its status. A job's state is that event; anything stored after it is
// ignored.
type EndRecord struct {
	Seq    uint64    `json:"seq"`
	Status Status    `json:"status"`
	Time   time.Time `json:"time"`
}

// ErrRecorded means a record of the job exists already (the first write
// won).
var ErrRecorded = errors.New("job record exists already")

// RecordOwner stores job id's owner record. It fails with ErrRecorded if
// the job has one.
func RecordOwner(ctx context.Context, js jetstream.Publisher, id string, rec OwnerRecord) error {
	rec.CreatedAt = rec.CreatedAt.UTC()
	return writeRecord(ctx, js, id, OwnerSubject(id), rec)
}

// RecordEnd stores that job ev.JobID ended with ev, stored at stream
// sequence seq. It fails with ErrRecorded if the job's end is recorded
// already (by this writer, whose answer was lost, or by another).
func RecordEnd(ctx context.Context, js jetstream.Publisher, ev Event, seq uint64) error {
	if !ev.Status.Terminal() || seq == 0 {
		return fmt.Errorf("job %s: only a stored final event ends a job (status %s, seq %d)", ev.JobID, ev.Status, seq)
	}
	return writeRecord(ctx, js, ev.JobID, EndSubject(ev.JobID), EndRecord{Seq: seq, Status: ev.Status, Time: ev.Time.UTC()})
}

func writeRecord(ctx context.Context, js jetstream.Publisher, id, subject string, rec any) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	// Expecting an empty subject gives an honest second writer a clear
	// answer; the stream refuses a second message even without it.
	_, err = js.Publish(ctx, subject, data, jetstream.WithExpectStream(RecordsStream), jetstream.WithExpectLastSequencePerSubject(0))
	if IsWrongLastSequence(err) || isPerSubjectLimit(err) {
		return fmt.Errorf("%w: %s", ErrRecorded, subject)
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

// ReadOwner reads job id's owner record; ErrNotFound if it has none.
func ReadOwner(ctx context.Context, records jetstream.Stream, id string) (OwnerRecord, error) {
	var rec OwnerRecord
	_, err := readRecord(ctx, records, id, OwnerSubject(id), &rec)
	return rec, err
}

// ReadEnd reads job id's end record; found is false if it has none.
func ReadEnd(ctx context.Context, records jetstream.Stream, id string) (rec EndRecord, found bool, err error) {
	_, err = readRecord(ctx, records, id, EndSubject(id), &rec)
	if errors.Is(err, ErrNotFound) {
		return EndRecord{}, false, nil
	}
	return rec, err == nil, err
}

func readRecord(ctx context.Context, records jetstream.Stream, id, subject string, rec any) (uint64, error) {
	if err := ValidateID(id); err != nil {
		return 0, err
	}
	m, err := records.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(m.Data, rec); err != nil {
		return 0, fmt.Errorf("job %s: stored record %s is not valid: %w", id, subject, err)
	}
	return m.Sequence, nil
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
	m, err := events.GetLastMsgForSubject(ctx, EventSubject(id))
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
	if m.Subject != EventSubject(id) || json.Unmarshal(m.Data, &ev) != nil || ev.JobID != id || !ev.Status.Terminal() {
		return state{}, fmt.Errorf("job %s: stream sequence %d is not its final event", id, seq)
	}
	return state{ev, m.Sequence, m.Data}, nil
}

// Job is what the gateway knows of a job: its owner record and state.
type Job struct {
	Owner OwnerRecord
	State Event
	Seq   uint64 // State's stream sequence
	Data  []byte // State as stored
}

// ReadJob reads job id's owner record and its state (see State) at once.
// A job without an owner record (stored around jobs.Enqueue, or before
// owner records existed) has the zero OwnerRecord: nobody owns it. It
// returns ErrNotFound when the job has no events.
func ReadJob(ctx context.Context, events, records jetstream.Stream, id string) (Job, error) {
	if err := ValidateID(id); err != nil {
		return Job{}, err
	}
	type owned struct {
		rec OwnerRecord
		err error
	}
	ownerc := make(chan owned, 1)
	go func() {
		rec, err := ReadOwner(ctx, records, id)
		ownerc <- owned{rec, err}
	}()
	st, err := readState(ctx, events, records, id)
	owner := <-ownerc
	if err != nil {
		return Job{}, err
	}
	if owner.err != nil && !errors.Is(owner.err, ErrNotFound) {
		return Job{}, owner.err
	}
	return Job{Owner: owner.rec, State: st.ev, Seq: st.seq, Data: st.data}, nil
}

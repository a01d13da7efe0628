package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// submitRequest is the body of POST /api/jobs.
type submitRequest struct {
	Type  string          `json:"type"`
	Input json.RawMessage `json:"input,omitempty"`
}

func handleSubmit(g *gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req submitRequest
		if err := decode(w, r, g.cfg.MaxBodyBytes, &req); err != nil {
			writeError(w, err)
			return
		}
		snap, replayed, err := g.submit(r.Context(), principalFrom(r.Context()), req, r.Header.Get("Idempotency-Key"))
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Location", "/api/jobs/"+snap.ID)
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		encode(w, http.StatusAccepted, snap)
	}
}

// submitTimeout bounds the stores of one submission.
const submitTimeout = 10 * time.Second

// submit checks a job request, stores it in the queue stream and records
// the job's "queued" state; both are acknowledged by JetStream before it
// returns. With an idempotency key, a repeated submit returns the first job.
func (g *gateway) submit(ctx context.Context, p principal, req submitRequest, idemKey string) (jobs.Snapshot, bool, error) {
	if req.Type == "" {
		return jobs.Snapshot{}, false, errorf(http.StatusBadRequest, "bad_request", `"type" is required`)
	}
	if len(req.Input) > 0 && !json.Valid(req.Input) {
		return jobs.Snapshot{}, false, errorf(http.StatusBadRequest, "bad_request", `"input" is not valid JSON`)
	}
	if d := jsonDepth(req.Input); d > int(g.cfg.MaxJSONDepth) {
		return jobs.Snapshot{}, false, errorf(http.StatusBadRequest, "bad_request", `"input" nests %d deep; at most %d is accepted`, d, g.cfg.MaxJSONDepth)
	}
	t, err := g.catalog.lookup(ctx, req.Type)
	if errors.Is(err, errUnknownType) {
		return jobs.Snapshot{}, false, errorf(http.StatusUnprocessableEntity, "unknown_type", "no runner has registered job type %q; see GET /api/job-types", req.Type)
	}
	if err != nil {
		return jobs.Snapshot{}, false, errUnavailable(err)
	}
	if err := t.validate(req.Input); err != nil {
		return jobs.Snapshot{}, false, errorf(http.StatusUnprocessableEntity, "invalid_input", "input for %s: %v", req.Type, err)
	}
	if !g.nc.IsConnected() {
		return jobs.Snapshot{}, false, errUnavailable(nats.ErrConnectionClosed)
	}

	// One deadline for every store of this submission (JetStream would
	// otherwise make one per publish), and no cancellation: a client that
	// goes away half-way must not leave a queued event without its request.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), submitTimeout)
	defer cancel()
	now := time.Now().UTC()
	id := jobs.NewID(now)
	var idemRecord string
	if idemKey != "" {
		existing, key, err := g.claimIdempotencyKey(ctx, p.Owner+"\x00"+idemKey, req, id)
		if err != nil {
			return jobs.Snapshot{}, false, err
		}
		idemRecord = key
		if existing != "" {
			ev, _, err := jobs.State(ctx, g.streams.Events, g.streams.Records, existing)
			if errors.Is(err, jobs.ErrNotFound) {
				// The first request with this key is still being stored.
				return jobs.Snapshot{}, false, errorf(http.StatusConflict, "in_progress", "a request with this Idempotency-Key is still being processed; retry shortly")
			}
			if err != nil {
				return jobs.Snapshot{}, false, errUnavailable(err)
			}
			return jobs.SnapshotOf(ev), true, nil
		}
	}

	queued, err := jobs.Enqueue(ctx, g.js, jobs.Request{ID: id, Type: req.Type, Input: req.Input, CreatedAt: now, Owner: p.Owner})
	if err != nil {
		g.forgetIdempotencyKey(idemRecord)
		return jobs.Snapshot{}, false, errUnavailable(err)
	}
	return jobs.SnapshotOf(queued), false, nil
}

// idempotencyRecord is stored per key: the job it made and a hash of the
// request, so a key reused for a different request is refused.
type idempotencyRecord struct {
	JobID       string `json:"job_id"`
	RequestHash string `json:"request_hash"`
}

// claimIdempotencyKey records key → id. If the key was used before it
// returns the job id stored then. It also returns the bucket key used.
func (g *gateway) claimIdempotencyKey(ctx context.Context, key string, req submitRequest, id string) (existing, bucketKey string, err error) {
	if _, k, _ := strings.Cut(key, "\x00"); len(k) > 255 || strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return "", "", errorf(http.StatusBadRequest, "bad_request", "Idempotency-Key must be at most 255 printable ASCII characters")
	}
	sum := sha256.Sum256([]byte(key))
	k := hex.EncodeToString(sum[:])
	canon, _ := json.Marshal(req)
	reqSum := sha256.Sum256(canon)
	rec := idempotencyRecord{JobID: id, RequestHash: hex.EncodeToString(reqSum[:])}
	b, _ := json.Marshal(rec)
	_, err = g.streams.Idempotency.Create(ctx, k, b)
	if err == nil {
		return "", k, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", "", errUnavailable(err)
	}
	e, err := g.streams.Idempotency.Get(ctx, k)
	if err != nil {
		return "", "", errUnavailable(err)
	}
	var prev idempotencyRecord
	if err := json.Unmarshal(e.Value(), &prev); err != nil || jobs.ValidateID(prev.JobID) != nil {
		return "", "", errorf(http.StatusInternalServerError, "internal", "stored idempotency record is damaged")
	}
	if prev.RequestHash != rec.RequestHash {
		return "", "", errorf(http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
	}
	return prev.JobID, k, nil
}

// forgetIdempotencyKey drops a claimed key of a submission that failed, so
// that the client's retry can succeed.
func (g *gateway) forgetIdempotencyKey(bucketKey string) {
	if bucketKey == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = g.streams.Idempotency.Delete(ctx, bucketKey)
}

func handleGet(g *gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ev, err := g.lookupJob(r.Context(), principalFrom(r.Context()), chi.URLParam(r, "id"))
		if err != nil {
			writeError(w, err)
			return
		}
		encode(w, http.StatusOK, jobs.SnapshotOf(ev))
	}
}

// lookupJob reads a job's state, mapping failures to API errors. A
// job p may not see answers exactly as an unknown one.
func (g *gateway) lookupJob(ctx context.Context, p principal, id string) (jobs.Event, error) {
	job, err := g.readJob(ctx, p, id)
	return job.State, err
}

// readJob reads a job's owner record and state (see jobs.ReadJob),
// mapping failures to API errors. A job p may not see answers exactly as
// an unknown one: who owns a job is what its owner record says, never an
// event.
func (g *gateway) readJob(ctx context.Context, p principal, id string) (jobs.Job, error) {
	if err := jobs.ValidateID(id); err != nil {
		return jobs.Job{}, errorf(http.StatusBadRequest, "invalid_id", "%v", err)
	}
	job, err := jobs.ReadJob(ctx, g.streams.Events, g.streams.Records, id)
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return jobs.Job{}, g.notFound(ctx, p, id)
	case err != nil:
		return jobs.Job{}, errUnavailable(err)
	case !p.canSee(job.Owner.Owner):
		return jobs.Job{}, errNoSuchJob(id)
	}
	return job, nil
}

// maxListScan bounds how many jobs one list request reads.
const maxListScan = 5000

func handleList(g *gateway) http.HandlerFunc {
	cursors := newCursorSealer(g.auth.sessionKey)
	type response struct {
		Jobs       []jobs.Snapshot `json:"jobs"`
		NextCursor string          `json:"next_cursor,omitempty"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, err := queryInt(r, "limit", 50, 1, 500)
		if err != nil {
			writeError(w, err)
			return
		}
		p := principalFrom(r.Context())
		status, typ := jobs.Status(q.Get("status")), q.Get("type")
		cursor, cursorOK := cursors.open(p.Owner, q.Get("cursor"))
		switch {
		case status != "" && !status.Valid():
			writeError(w, errorf(http.StatusBadRequest, "bad_request", "status must be one of queued, running, succeeded, failed, canceled"))
			return
		case typ != "" && jobs.ValidateType(typ) != nil:
			writeError(w, errorf(http.StatusBadRequest, "bad_request", "type is not a valid job type name"))
			return
		case !cursorOK:
			writeError(w, errorf(http.StatusBadRequest, "bad_request", "cursor is not valid"))
			return
		}
		ids, err := g.jobIDs(r.Context())
		if err != nil {
			writeError(w, errUnavailable(err))
			return
		}
		resp := response{Jobs: []jobs.Snapshot{}}
		scanned, last := 0, ""
		for _, id := range ids {
			if cursor != "" && id >= cursor {
				continue
			}
			if len(resp.Jobs) == limit || scanned == maxListScan {
				resp.NextCursor = cursors.seal(p.Owner, last)
				break
			}
			scanned, last = scanned+1, id
			// The owner record first: a job of another owner costs one read.
			owner, err := jobs.ReadOwner(r.Context(), g.streams.Records, id)
			if err != nil && !errors.Is(err, jobs.ErrNotFound) || !p.canSee(owner.Owner) || typ != "" && owner.Type != "" && owner.Type != typ {
				continue // not p's, or aged out between listing and reading
			}
			ev, _, err := jobs.State(r.Context(), g.streams.Events, g.streams.Records, id)
			if err == nil && (status == "" || ev.Status == status) && (typ == "" || cmp.Or(owner.Type, ev.Type) == typ) {
				resp.Jobs = append(resp.Jobs, jobs.SnapshotOf(ev))
			}
		}
		encode(w, http.StatusOK, resp)
	}
}

// jobIDs lists the ids of every job with stored events, newest first.
func (g *gateway) jobIDs(ctx context.Context) ([]string, error) {
	info, err := g.streams.Events.Info(ctx, jetstream.WithSubjectFilter(jobs.AllEvents))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		if id, ok := jobs.IDFromEventSubject(subj); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	return ids, nil
}

func handleJobTypes(g *gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]any{"job_types": g.catalog.list()})
	}
}

// notFound is the error for a job with no stored events: 410 "expired" if
// it ended and its events have aged out since (and p owns it: its records
// outlive its events), 404 "not_found" otherwise.
func (g *gateway) notFound(ctx context.Context, p principal, id string) error {
	owner, err := jobs.ReadOwner(ctx, g.streams.Records, id)
	if err != nil && !errors.Is(err, jobs.ErrNotFound) || !p.canSee(owner.Owner) {
		return errNoSuchJob(id)
	}
	if _, ended, err := jobs.ReadEnd(ctx, g.streams.Records, id); err == nil && ended {
		return errorf(http.StatusGone, "expired", "job %s has ended and its records have expired", id)
	}
	return errNoSuchJob(id)
}

func errNoSuchJob(id string) error {
	return errorf(http.StatusNotFound, "not_found", "no job with id %s", id)
}

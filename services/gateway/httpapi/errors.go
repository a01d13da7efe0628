package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/services/gateway/jobops"
	"github.com/jobwire/jobwire/services/gateway/live"
	"github.com/jobwire/jobwire/shared/jobs"
)

// apiError is the body of every error response:
// {"error": {"code": "...", "message": "..."}}. A WebSocket client gets the
// same code and message in an "error" message.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Errors of the HTTP layer itself.
var (
	errUnauthenticated      = errorf(http.StatusUnauthorized, "unauthenticated", "sign in: send a bearer token")
	errTooManyConns         = errorf(http.StatusTooManyRequests, "too_many_connections", "this owner has too many open watch connections")
	errTooManyConnsFromAddr = errorf(http.StatusTooManyRequests, "too_many_connections", "your address has too many open watch connections without a token")
	errGatewayFull          = errorf(http.StatusTooManyRequests, "too_many_connections", "the gateway has as many watch connections open as it may; try again shortly")
	errInternal             = errorf(http.StatusInternalServerError, "internal", "internal error")
	errShuttingDown         = errorf(http.StatusServiceUnavailable, "shutting_down", "the gateway is shutting down")

	// Requests on a WebSocket that are not understood.
	errNotJSON   = errorf(http.StatusBadRequest, "bad_request", `send JSON text messages like {"op":"watch","job_id":"..."}`)
	errUnknownOp = errorf(http.StatusBadRequest, "bad_request", `"op" must be "watch", "unwatch", "watch_mine", "unwatch_mine", "watch_all" or "unwatch_all"`)
	// errNotUTF8 closes a WebSocket that sent a text message that is not
	// UTF-8 (see closeStatus).
	errNotUTF8 = errors.New("text messages must be UTF-8")
)

// apiErrorOf is the answer to err: the errors of the job rules (jobops)
// and of live each have their status, code and message here; an error of
// unknown kind is an internal one.
func apiErrorOf(err error) *apiError {
	var (
		ae       *apiError
		invalid  *jobops.InvalidArgumentError
		unknown  *jobops.UnknownTypeError
		input    *jobops.InvalidInputError
		finished *jobops.AlreadyFinishedError
		noRetry  *jobops.NotRetryableError
		down     *jobops.UnavailableError
		job      *jobops.JobError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &invalid):
		return errorf(http.StatusBadRequest, "bad_request", "%s", invalid.Msg)
	case errors.Is(err, jobops.ErrInvalidID):
		return errorf(http.StatusBadRequest, "invalid_id", "%v", err)
	case errors.As(err, &job) && errors.Is(err, jobops.ErrExpired):
		return errorf(http.StatusGone, "expired", "job %s has ended and its records have expired", job.ID)
	case errors.As(err, &job):
		return errorf(http.StatusNotFound, "not_found", "no job with id %s", job.ID)
	case errors.As(err, &unknown):
		return errorf(http.StatusUnprocessableEntity, "unknown_type", "no runner has registered job type %q; see GET /api/job-types", unknown.Type)
	case errors.As(err, &input):
		return errorf(http.StatusUnprocessableEntity, "invalid_input", "input for %s: %v", input.Type, input.Err)
	case errors.As(err, &finished):
		return errorf(http.StatusConflict, "already_finished", "the job has already %s", finished.Job.Status)
	case errors.As(err, &noRetry):
		return errorf(http.StatusConflict, "not_retryable", "job %s is %s: only a failed or canceled job can be retried", noRetry.Job.ID, noRetry.Job.Status)
	case errors.Is(err, jobops.ErrScheduleNotFound):
		return errorf(http.StatusNotFound, "not_found", "no such schedule")
	case errors.Is(err, jobops.ErrInProgress):
		return errorf(http.StatusConflict, "in_progress", "a request with this Idempotency-Key is still being processed; retry shortly")
	case errors.Is(err, jobops.ErrInvalidIdempotencyKey):
		return errorf(http.StatusBadRequest, "bad_request", "Idempotency-Key must be at most 255 printable ASCII characters")
	case errors.Is(err, jobops.ErrIdempotencyKeyReused):
		return errorf(http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
	case errors.Is(err, jobops.ErrIdempotencyRecordDamaged):
		return errorf(http.StatusInternalServerError, "internal", "stored idempotency record is damaged")
	case errors.Is(err, jobops.ErrBusy):
		return errorf(http.StatusConflict, "busy", "the job keeps changing; try again")
	case errors.Is(err, live.ErrShuttingDown):
		return errShuttingDown
	case errors.Is(err, live.ErrTooManyWatches):
		return errorf(http.StatusTooManyRequests, "too_many_watches", "this connection already watches the most jobs it may")
	case errors.Is(err, live.ErrForbidden):
		return errorf(http.StatusForbidden, "forbidden", "watching every job is for admins")
	case errors.Is(err, live.ErrFeedUnavailable):
		return errorf(http.StatusServiceUnavailable, "unavailable", "cannot subscribe right now, try again")
	case errors.Is(err, live.ErrStateDamaged):
		return errorf(http.StatusInternalServerError, "internal", "the job's stored state is damaged")
	case errors.As(err, &down):
		return errUnavailable(down.Err)
	}
	return errInternal
}

// wsErrorOf is the code and message of a WebSocket request that failed
// with err: as apiErrorOf, but a failure of unknown kind counts as the job
// store's.
func wsErrorOf(err error) *apiError {
	ae := apiErrorOf(err)
	if ae == errInternal {
		ae = errUnavailable(err)
	}
	return ae
}

// Close codes a WebSocket client may see, besides the standard ones.
const (
	// CloseTooSlow: the client did not read fast enough; it can reconnect
	// and resume with after_seq.
	CloseTooSlow websocket.StatusCode = 4008
)

// closeStatus is the close code and reason a WebSocket is closed with
// when its session ends for reason.
func closeStatus(reason error) (websocket.StatusCode, string) {
	switch {
	case errors.Is(reason, live.ErrShuttingDown):
		return websocket.StatusGoingAway, "server shutting down, reconnect"
	case errors.Is(reason, live.ErrTooSlow):
		return CloseTooSlow, "too slow: reconnect and resume with after_seq"
	case errors.Is(reason, errNotUTF8):
		return websocket.StatusInvalidFramePayloadData, "text messages must be UTF-8"
	}
	return websocket.StatusInternalError, "internal error"
}

func errUnavailable(err error) *apiError {
	return errorf(http.StatusServiceUnavailable, "unavailable", "the job store is unreachable, try again shortly (%v)", err)
}

// writeError answers with err (see apiErrorOf).
func writeError(w http.ResponseWriter, err error) {
	ae := apiErrorOf(err)
	switch {
	case ae.Status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	case ae.Status == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "":
		w.Header().Set("Retry-After", "5") // a connection limit: one may close any moment
	}
	encode(w, ae.Status, errorBody{ae})
}

type errorBody struct {
	Error *apiError `json:"error"`
}

// writeAlreadyFinished answers a cancel of an ended job: the error and
// the job's final state.
func writeAlreadyFinished(w http.ResponseWriter, err *jobops.AlreadyFinishedError) {
	encode(w, http.StatusConflict, struct {
		Error *apiError     `json:"error"`
		Job   jobs.Snapshot `json:"job"`
	}{apiErrorOf(err), err.Job})
}

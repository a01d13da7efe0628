package live

import (
	"errors"

	"github.com/jobwire/jobwire/services/gateway/jobops"
)

// The errors of live, all in this file; httpapi/errors.go answers each.
// A watch of a job fails with the Jobs reader's errors too (jobops').
var (
	// ErrShuttingDown: the node takes no new session, and closes the
	// open ones with this reason.
	ErrShuttingDown = errors.New("live: shutting down")

	// ErrTooSlow closes a session whose client did not take its messages
	// in time, or whose gap could not be repaired; it can resume by seq.
	ErrTooSlow = errors.New("live: the client is too slow")

	// ErrTooManyWatches: the session watches the most jobs it may.
	ErrTooManyWatches = errors.New("live: too many watches")

	// ErrForbidden: only admins may watch every job.
	ErrForbidden = errors.New("live: watching every job is for admins")

	// ErrFeedUnavailable: the feed of every job cannot be subscribed to now.
	ErrFeedUnavailable = errors.New("live: cannot subscribe to every job")

	// ErrStateDamaged: a job's stored state cannot be read.
	ErrStateDamaged = errors.New("live: the job's stored state is damaged")
)

// unavailable is the error of a NATS read or subscription that failed.
func unavailable(err error) error { return &jobops.UnavailableError{Err: err} }

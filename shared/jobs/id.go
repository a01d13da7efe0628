package jobs

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// MaxIDLen bounds job ids and job type names.
const MaxIDLen = 64

// ErrInvalidID is wrapped by every id and type validation error.
var ErrInvalidID = errors.New("invalid id")

// NewID returns a fresh, time-sortable job id: a ULID, 26 characters of
// Crockford base32 whose first 10 carry the time to the millisecond. The
// ids one process makes sort in the order they were made, within a
// millisecond too: the random part then grows by a random step (up to
// 2^32, so the next id is not guessable from the last). An id for a time
// before the last one's, and ids of different processes, sort by their
// millisecond only. Times before 1970 count as
// 1970.
func NewID(now time.Time) string {
	if now.Before(time.Unix(0, 0)) {
		now = time.Unix(0, 0)
	}
	return ids.next(ulid.Timestamp(now))
}

// ids makes this process's job ids. The step bound is 2^32-1, not 2^32:
// ulid draws a step below 2^32 from 5 random bytes and throws away the
// draws that do not fit, about 255 of every 256 (6 µs per id, all of it
// reading crypto/rand); below 2^32-1 it draws 4 bytes and keeps nearly
// every draw (0.2 µs per id, BenchmarkNewID).
var ids = &idSource{entropy: ulid.Monotonic(rand.Reader, 1<<32-1)}

type idSource struct {
	mu      sync.Mutex
	lastMs  uint64 // of the last id made from entropy
	entropy *ulid.MonotonicEntropy
}

func (s *idSource) next(ms uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ms < s.lastMs {
		// Made at an earlier time than the last id (a caller that took
		// its time before another's): it sorts by its millisecond, and
		// leaves the run of the last one alone.
		return ulid.MustNew(ms, rand.Reader).String()
	}
	for {
		id, err := ulid.New(ms, s.entropy)
		if err == nil {
			s.lastMs = ms
			return id.String()
		}
		ms++ // the random part ran out within this millisecond: use the next
	}
}

// ValidateID reports whether id can be used as a single NATS subject token.
// Allowed: 1..64 characters of A-Z, a-z, 0-9, '-' and '_'. This excludes
// '.', '*', '>', white space, control characters and everything that would
// need escaping in a URL path.
func ValidateID(id string) error {
	return validateToken("job id", id)
}

// ValidateType checks a job type name with the same rules as ValidateID.
func ValidateType(typ string) error {
	return validateToken("job type", typ)
}

func validateToken(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidID, what)
	}
	if len(s) > MaxIDLen {
		return fmt.Errorf("%w: %s is longer than %d characters", ErrInvalidID, what, MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar(s[i]) {
			return fmt.Errorf("%w: %s may contain only letters, digits, '-' and '_' (found %q)", ErrInvalidID, what, s[i])
		}
	}
	return nil
}

func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

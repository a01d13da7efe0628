package jobs_test

import (
	"errors"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/oklog/ulid/v2"
)

// invalidIDs are rejected by ValidateID and ValidateType. They double as
// the seed corpus of FuzzValidateID.
var invalidIDs = []string{
	"",
	"*",
	">",
	"a.b",
	".",
	"a b",
	" ",
	"a\tb",
	"a\nb",
	"a\rb",
	"%2A",
	"a/b",
	"a:b",
	"é",
	"über",
	"日本",
	"Ａ",      // full-width A
	"jоb",    // Cyrillic о
	"a\x00b", // NUL
	"\x00",
	"a\x7fb", // DEL
	"a\xffb", // not UTF-8
	strings.Repeat("a", jobs.MaxIDLen+1),
	strings.Repeat("A", 1000),
}

func validIDs() []string {
	return []string{
		jobs.NewID(time.Now()),
		jobs.NewID(time.Date(2025, 3, 14, 9, 39, 26, 0, time.UTC)),
		"a",
		"Z",
		"0",
		"-",
		"_",
		"resize-images",
		"resize_images_v2",
		"ABCxyz-019_",
		strings.Repeat("a", jobs.MaxIDLen),
	}
}

func TestValidateID(t *testing.T) {
	t.Parallel()
	if jobs.MaxIDLen != 64 {
		t.Fatalf("MaxIDLen = %d, want 64 (the documented limit)", jobs.MaxIDLen)
	}
	validators := []struct {
		name     string
		validate func(string) error
	}{
		{"ValidateID", jobs.ValidateID},
		{"ValidateType", jobs.ValidateType},
	}
	for _, v := range validators {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			for _, id := range validIDs() {
				if err := v.validate(id); err != nil {
					t.Errorf("%s(%q) = %v, want nil", v.name, id, err)
				}
			}
			for _, id := range invalidIDs {
				err := v.validate(id)
				if err == nil {
					t.Errorf("%s(%q) = nil, want an error", v.name, id)
					continue
				}
				if !errors.Is(err, jobs.ErrInvalidID) {
					t.Errorf("%s(%q) = %v, which does not wrap ErrInvalidID", v.name, id, err)
				}
			}
		})
	}
}

func TestNewIDSortsByTime(t *testing.T) {
	t.Parallel()
	base := time.Date(2025, 3, 14, 9, 39, 26, 0, time.UTC)
	// ULIDs resolve milliseconds, so the steps are at least 1ms; they span
	// many digits of the encoded timestamp.
	steps := []time.Duration{
		0, time.Millisecond, 2 * time.Millisecond, 31 * time.Millisecond,
		time.Second, time.Minute, time.Hour, 24 * time.Hour,
		365 * 24 * time.Hour, 50 * 365 * 24 * time.Hour,
	}
	var ids []string
	at := base
	for i := range 200 {
		at = at.Add(steps[i%len(steps)] + time.Millisecond)
		id := jobs.NewID(at)
		if err := jobs.ValidateID(id); err != nil {
			t.Fatalf("NewID(%v) = %q: %v", at, id, err)
		}
		ids = append(ids, id)
	}
	if !slices.IsSorted(ids) {
		t.Fatalf("ids made at increasing times do not sort as strings: %q", ids)
	}
	shuffled := slices.Clone(ids)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	slices.Sort(shuffled)
	if !slices.Equal(shuffled, ids) {
		t.Fatal("sorting shuffled ids does not restore creation order")
	}

	// A non-UTC time is the same instant: it must sort by instant.
	early := jobs.NewID(base.In(time.FixedZone("UTC-10", -10*3600)))
	late := jobs.NewID(base.Add(time.Millisecond).In(time.FixedZone("UTC+14", 14*3600)))
	if early >= late {
		t.Errorf("id of an earlier instant %q does not sort before a later one %q", early, late)
	}
}

// TestNewIDSortsWithinAMillisecond: the list promises newest first, also
// for jobs submitted in the same millisecond.
// Not parallel: other tests make ids at other times meanwhile. Its time
// is later than any other test's, as an id for an earlier time than the
// last one's sorts by its millisecond only.
func TestNewIDSortsWithinAMillisecond(t *testing.T) {
	now := time.Date(5000, 3, 14, 9, 39, 26, 123456789, time.UTC)
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = jobs.NewID(now)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("id %d %q made after %q in the same millisecond does not sort after it", i, ids[i], ids[i-1])
		}
	}
}

// TestNewIDConcurrentSameMillisecond: goroutines making ids at once in one
// millisecond get distinct ids, each goroutine's in the order it made
// them, and the steps between consecutive ids are random (not guessable
// from the last id) and below 2^32.
// Not parallel, and later than any other test's time, for the reason
// given at TestNewIDSortsWithinAMillisecond.
func TestNewIDConcurrentSameMillisecond(t *testing.T) {
	now := time.Date(6000, 1, 2, 3, 4, 5, 6, time.UTC)
	const goroutines, each = 8, 2000
	made := make([][]string, goroutines)
	var wg sync.WaitGroup
	for g := range made {
		wg.Go(func() {
			for range each {
				made[g] = append(made[g], jobs.NewID(now))
			}
		})
	}
	wg.Wait()
	var all []string
	for g, ids := range made {
		if !slices.IsSorted(ids) {
			t.Fatalf("goroutine %d: its ids do not sort in the order it made them", g)
		}
		all = append(all, ids...)
	}
	slices.Sort(all)
	if n := len(slices.Compact(slices.Clone(all))); n != goroutines*each {
		t.Fatalf("%d distinct ids of %d", n, goroutines*each)
	}
	steps := map[string]bool{}
	limit := new(big.Int).Lsh(big.NewInt(1), 32)
	for i := 1; i < len(all); i++ {
		a, b := ulid.MustParse(all[i-1]), ulid.MustParse(all[i])
		if a.Time() != b.Time() {
			t.Fatalf("ids %q and %q made in one millisecond carry different times", all[i-1], all[i])
		}
		ea, eb := b.Entropy(), a.Entropy()
		step := new(big.Int).Sub(new(big.Int).SetBytes(ea), new(big.Int).SetBytes(eb))
		if step.Sign() <= 0 || step.Cmp(limit) >= 0 {
			t.Fatalf("step %v between %q and %q, want 1 to 2^32-1", step, all[i-1], all[i])
		}
		steps[step.String()] = true
	}
	if len(steps) < len(all)/2 {
		t.Errorf("only %d distinct steps between %d ids: not random", len(steps), len(all))
	}
}

func TestNewIDUnique(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 14, 9, 39, 26, 123456789, time.UTC)
	seen := make(map[string]bool)
	for range 1000 {
		id := jobs.NewID(now)
		if err := jobs.ValidateID(id); err != nil {
			t.Fatalf("NewID = %q: %v", id, err)
		}
		if len(id) != 26 {
			t.Fatalf("NewID = %q, %d characters, want 26 (a ULID)", id, len(id))
		}
		if seen[id] {
			t.Fatalf("NewID returned %q twice for the same instant", id)
		}
		seen[id] = true
	}
}

// FuzzValidateID checks that every id ValidateID accepts is safe to paste
// into a subject: exactly one token, printable ASCII, no wildcard.
func FuzzValidateID(f *testing.F) {
	for _, id := range invalidIDs {
		f.Add(id)
	}
	for _, id := range validIDs() {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := jobs.ValidateID(s)
		if (err == nil) != (jobs.ValidateType(s) == nil) {
			t.Fatalf("ValidateID(%q) = %v but ValidateType disagrees", s, err)
		}
		if err != nil {
			if !errors.Is(err, jobs.ErrInvalidID) {
				t.Fatalf("ValidateID(%q) = %v, which does not wrap ErrInvalidID", s, err)
			}
			return
		}
		subject := jobs.ProgressSubject(s)
		tokens := strings.Split(subject, ".")
		if len(tokens) != 3 || tokens[1] != s {
			t.Fatalf("valid id %q gives subject %q with tokens %q", s, subject, tokens)
		}
		if strings.ContainsAny(s, ".*> ") {
			t.Fatalf("valid id %q contains one of . * > or space", s)
		}
		for i := 0; i < len(s); i++ {
			if s[i] < 0x21 || s[i] > 0x7e {
				t.Fatalf("valid id %q contains byte %#x", s, s[i])
			}
		}
		if len(s) == 0 || len(s) > jobs.MaxIDLen {
			t.Fatalf("valid id %q has length %d", s, len(s))
		}
		if id, ok := jobs.IDFromProgressSubject(subject); !ok || id != s {
			t.Fatalf("IDFromProgressSubject(%q) = %q, %v; want %q, true", subject, id, ok, s)
		}
	})
}

package jobindex

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// TypeStats is what the index counts of one job type.
type TypeStats struct {
	Type string `json:"type"`
	// Counts is how many jobs are in each status now.
	Counts map[jobs.Status]int64 `json:"counts"`
	// PerMinute is how many jobs ended in each of the last 60 minutes,
	// oldest first (the last one is the minute now running).
	PerMinute []MinuteStats `json:"per_minute"`
	Queue     *QueueStats   `json:"queue,omitempty"`
	Runners   *RunnerStats  `json:"runners,omitempty"`
}

// MinuteStats is how many jobs ended in a minute, by final status.
type MinuteStats struct {
	Minute    time.Time `json:"minute"`
	Succeeded int64     `json:"succeeded"`
	Failed    int64     `json:"failed"`
	Canceled  int64     `json:"canceled"`
}

// QueueStats is a type's queue as its runners' consumer sees it.
type QueueStats struct {
	// Waiting is how many requests no runner has taken yet.
	Waiting uint64 `json:"waiting"`
	// OldestAgeSeconds is the age of the oldest of them (0: none).
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	// InFlight is how many are taken and not yet done.
	InFlight int `json:"in_flight"`
}

// RunnerStats is how many runners serve a type and how many of its jobs
// they run at once, together.
type RunnerStats struct {
	Count       int `json:"count"`
	Concurrency int `json:"concurrency"`
}

// statuses is every status, in the order a job goes through them.
var statuses = []jobs.Status{jobs.StatusScheduled, jobs.StatusQueued, jobs.StatusRunning, jobs.StatusSucceeded, jobs.StatusFailed, jobs.StatusCanceled}

// Stats reads scope's counters for the given types and every type
// counted: two requests, and one more per type for its minutes. Nothing
// is scanned.
func (r *Reader) Stats(ctx context.Context, scope jobs.ListScope, types []string, now time.Time) ([]TypeStats, error) {
	byType := map[string]*TypeStats{}
	get := func(typ string) *TypeStats {
		if t := byType[typ]; t != nil {
			return t
		}
		t := &TypeStats{Type: typ, Counts: map[jobs.Status]int64{}}
		for _, st := range statuses {
			t.Counts[st] = 0
		}
		byType[typ] = t
		return t
	}
	for _, typ := range types {
		get(typ)
	}
	err := jobs.MultiLast(ctx, r.nc, jobs.CountsStream, []string{scope.StatusCounters()}, func(m jobs.StoredEvent) {
		typ, st, ok := scope.ParseStatusCounter(m.Subject)
		n, valid := jobs.CounterValue(m.Data)
		if ok && valid && st.Valid() && jobs.ValidateType(typ) == nil {
			get(typ).Counts[st] = max(n, 0) // never below 0, even while a decrement overtakes its increment
		}
	})
	if err != nil {
		return nil, err
	}
	start := now.UTC().Truncate(time.Minute).Add(-59 * time.Minute)
	out := make([]TypeStats, 0, len(byType))
	for _, typ := range slices.Sorted(maps.Keys(byType)) {
		t := byType[typ]
		t.PerMinute = make([]MinuteStats, 60)
		for i := range t.PerMinute {
			t.PerMinute[i].Minute = start.Add(time.Duration(i) * time.Minute)
		}
		err := jobs.MultiLast(ctx, r.nc, jobs.MinutesStream, []string{scope.MinuteCounters(typ)}, func(m jobs.StoredEvent) {
			minute, st, ok := scope.ParseMinuteCounter(typ, m.Subject)
			n, valid := jobs.CounterValue(m.Data)
			i := int(minute.Sub(start) / time.Minute)
			if !ok || !valid || minute.Before(start) || i >= 60 {
				return
			}
			switch st {
			case jobs.StatusSucceeded:
				t.PerMinute[i].Succeeded = n
			case jobs.StatusFailed:
				t.PerMinute[i].Failed = n
			case jobs.StatusCanceled:
				t.PerMinute[i].Canceled = n
			}
		})
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, nil
}

// Queue reads type typ's queue from its runners' consumers, one per
// priority: two requests each. A type no runner has served yet has no
// consumer: nil.
func (r *Reader) Queue(ctx context.Context, typ string, now time.Time) (*QueueStats, error) {
	var q *QueueStats
	for _, p := range jobs.Priorities {
		cons, err := r.streams.Events.Consumer(ctx, jobs.PriorityConsumerName(p, typ))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if q == nil {
			q = &QueueStats{}
		}
		info := cons.CachedInfo()
		q.Waiting += info.NumPending
		q.InFlight += info.NumAckPending
		if info.NumPending == 0 {
			continue
		}
		_, err = jobs.DirectBatch(ctx, r.nc, jobs.Stream, struct {
			Seq     uint64 `json:"seq"`
			NextFor string `json:"next_by_subj"`
			Batch   int    `json:"batch"`
		}{info.Delivered.Stream + 1, jobs.PriorityQueueFilter(p, typ), 1}, func(m jobs.StoredEvent) bool {
			var head struct {
				CreatedAt time.Time `json:"created_at"`
			}
			if json.Unmarshal(m.Data, &head) == nil && !head.CreatedAt.IsZero() {
				q.OldestAgeSeconds = max(q.OldestAgeSeconds, now.Sub(head.CreatedAt).Seconds())
			}
			return false
		})
		if err != nil {
			return nil, err
		}
	}
	return q, nil
}

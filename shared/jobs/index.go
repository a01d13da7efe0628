package jobs

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The job index: what lists and counts jobs without reading them all.
// The gateway's indexer (services/gateway/jobindex) keeps it from Stream
// through the durable consumer IndexerConsumer: every job gets a position
// in its owner's list and in the list of all jobs (numbered by counters in
// CountsStream, 1, 2, 3 … in the order the indexer first sees the jobs),
// and the number of jobs in each status is counted per type, per owner and
// for everyone. A page of a list is the entries at some positions, read
// in one request however many jobs are stored. An entry holds its job's
// final state (IndexEntry.Snapshot) once the job has ended; a list reads
// the last event of a job not ended yet from Stream. Each list has a list
// per final status (ListScope.Ended): the jobs that ended so, most
// recently ended first, so a page of failed jobs reads as few messages as
// a page of all jobs however rare failures are.
const (
	// IndexStream keeps the lists (IndexAllSubject, IndexOwnerSubject)
	// and the indexer's record of each job (IndexStateSubject): one
	// message per subject, as long as the jobs' events are kept.
	IndexStream = "JOBS_INDEX"
	// CountsStream keeps counters (NATS message counters): the last
	// position of each list, and the jobs in each status.
	CountsStream = "JOBS_COUNTS"
	// MinutesStream keeps counters of the jobs that ended in each minute,
	// for two hours.
	MinutesStream = "JOBS_MINUTES"
	// IndexerConsumer is the durable consumer of Stream that the gateways'
	// indexers share.
	IndexerConsumer = "jobwire_indexer"
)

// MinutesKept is how long MinutesStream keeps a minute's counters.
const MinutesKept = 2 * time.Hour

// ListScope is whose list: "all" for every job, or an owner's (OwnerKey);
// and either all of them, newest first, or (Ended) those that ended in
// one final status, the most recently ended first.
type ListScope struct {
	key   string
	ended Status
}

// AllJobsScope is the list of every job.
var AllJobsScope = ListScope{}

// OwnerScope is the list of owner's jobs.
func OwnerScope(owner string) ListScope { return ListScope{key: OwnerKey(owner)} }

// OwnerKey is owner made subject-safe: owners ("user:<sub>",
// "anon:<session>") may hold any character, so subjects name an owner by
// the first 128 bits of its SHA-256, in lower-case base32 (26 letters and
// digits).
func OwnerKey(owner string) string {
	sum := sha256.Sum256([]byte(owner))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16]))
}

// Ended is the list of s's jobs that ended in st (a final status):
// positions given as the indexer sees their final events. Ended("") is
// s's list of every job.
func (s ListScope) Ended(st Status) ListScope { return ListScope{key: s.key, ended: st} }

// EndedIn is the final status s lists ("": s lists every job).
func (s ListScope) EndedIn() Status { return s.ended }

// token is the scope's part of a subject: "all", or "owner.<key>", then
// ".<status>" for a list of ended jobs (a job's position is a number and
// an owner's key never a status, so no subject of one list is another's).
func (s ListScope) token() string {
	t := "all"
	if s.key != "" {
		t = "owner." + s.key
	}
	if s.ended != "" {
		t += "." + string(s.ended)
	}
	return t
}

// IndexSubject is the subject of the entry at position n of s's list.
func (s ListScope) IndexSubject(n uint64) string {
	return "jobwire.index." + s.token() + "." + strconv.FormatUint(n, 10)
}

// IndexFilter matches every entry of s's list.
func (s ListScope) IndexFilter() string { return "jobwire.index." + s.token() + ".*" }

// PositionCounter is the counter of s's list's last position.
func (s ListScope) PositionCounter() string { return "jobwire.count.pos." + s.token() }

// StatusCounter counts s's jobs of type typ in status st.
func (s ListScope) StatusCounter(typ string, st Status) string {
	return "jobwire.count.status." + s.Ended("").token() + "." + typ + "." + string(st)
}

// StatusCounters matches every status counter of s.
func (s ListScope) StatusCounters() string {
	return "jobwire.count.status." + s.Ended("").token() + ".*.*"
}

// MinuteCounter counts s's jobs of type typ that ended in status st in
// the minute that starts at minute.
func (s ListScope) MinuteCounter(typ string, minute time.Time, st Status) string {
	return "jobwire.minute." + s.Ended("").token() + "." + typ + "." + strconv.FormatInt(minute.Unix()/60, 10) + "." + string(st)
}

// MinuteCounters matches every minute counter of s's jobs of type typ.
func (s ListScope) MinuteCounters(typ string) string {
	return "jobwire.minute." + s.Ended("").token() + "." + typ + ".*.*"
}

// ParseStatusCounter returns the type and status a status counter of s counts.
func (s ListScope) ParseStatusCounter(subject string) (typ string, st Status, ok bool) {
	rest, ok := strings.CutPrefix(subject, "jobwire.count.status."+s.Ended("").token()+".")
	if !ok {
		return "", "", false
	}
	typ, status, ok := strings.Cut(rest, ".")
	return typ, Status(status), ok && !strings.Contains(status, ".")
}

// ParseMinuteCounter returns the minute and status a minute counter of s
// for type typ counts.
func (s ListScope) ParseMinuteCounter(typ, subject string) (minute time.Time, st Status, ok bool) {
	rest, ok := strings.CutPrefix(subject, "jobwire.minute."+s.Ended("").token()+"."+typ+".")
	if !ok {
		return time.Time{}, "", false
	}
	m, status, ok := strings.Cut(rest, ".")
	n, err := strconv.ParseInt(m, 10, 64)
	if !ok || err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(n*60, 0).UTC(), Status(status), true
}

// IndexStateSubject is where the indexer records what it has counted of
// job id.
func IndexStateSubject(id string) string { return "jobwire.index.state." + id }

// IndexEntry is a job's entry in a list.
type IndexEntry struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	// Once the job has ended (succeeded, failed, canceled) and the
	// indexer has seen its final event: Snapshot is the job's state from
	// that event (a Snapshot, as JSON, ready for a list page), Status its
	// status and EndedAt when it ended; all absent before.
	Snapshot json.RawMessage `json:"snapshot,omitempty"`
	Status   Status          `json:"status,omitempty"`
	EndedAt  time.Time       `json:"ended_at,omitzero"`
	// Final is the final event itself, in entries written before
	// 2026-12-02 (which hold no Snapshot); readers still read it.
	Final json.RawMessage `json:"final,omitempty"`
}

// IndexState is the indexer's record of a job: the status it last counted
// (from the event at Seq), the one before, and the job's positions: in its
// owner's list and the list of all jobs, and once it has ended in those
// lists' lists of jobs ended in Status (ListScope.Ended).
type IndexState struct {
	ID       string `json:"id"`
	Seq      uint64 `json:"seq"`
	Status   Status `json:"status"`
	Prev     Status `json:"prev,omitempty"`
	Owner    string `json:"owner"`
	Type     string `json:"type"`
	OwnerPos uint64 `json:"owner_pos"`
	AllPos   uint64 `json:"all_pos"`
	// OwnerEndedPos and AllEndedPos: positions in the lists of jobs
	// ended in Status (0 while the job has not ended).
	OwnerEndedPos uint64 `json:"owner_ended_pos,omitempty"`
	AllEndedPos   uint64 `json:"all_ended_pos,omitempty"`
	// Created is when the job was created, for its list entries.
	Created time.Time `json:"created"`
	// Time is the event's: a final status is counted in its minute.
	Time time.Time `json:"time"`
}

// CounterValue reads a NATS message counter's value from its message.
func CounterValue(data []byte) (int64, bool) {
	var v struct {
		Val string `json:"val"`
	}
	if json.Unmarshal(data, &v) != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Val, 10, 64)
	return n, err == nil
}

// IndexStreamConfig is IndexStream.
func (t Topology) IndexStreamConfig() jetstream.StreamConfig {
	t = t.withDefaults()
	return jetstream.StreamConfig{
		Name:              IndexStream,
		Description:       "jobwire job lists and the indexer's record of each job",
		Subjects:          []string{"jobwire.index.>"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          t.Replicas,
		MaxAge:            t.EventsMaxAge,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
	}
}

// CountsStreamConfig is CountsStream.
func (t Topology) CountsStreamConfig() jetstream.StreamConfig {
	return t.counterStream(CountsStream, "jobwire counters: list positions, jobs by status", "jobwire.count.>", 0)
}

// MinutesStreamConfig is MinutesStream.
func (t Topology) MinutesStreamConfig() jetstream.StreamConfig {
	return t.counterStream(MinutesStream, "jobwire counters of jobs ended per minute", "jobwire.minute.>", MinutesKept)
}

// counterStream is a stream of NATS message counters: the last value of
// each counter, updates deduplicated by message id for two minutes.
func (t Topology) counterStream(name, description, subjects string, maxAge time.Duration) jetstream.StreamConfig {
	t = t.withDefaults()
	return jetstream.StreamConfig{
		Name:              name,
		Description:       description,
		Subjects:          []string{subjects},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          t.Replicas,
		MaxAge:            maxAge,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		Duplicates:        DefaultQueueDuplicateWindow,
		AllowDirect:       true,
		AllowMsgCounter:   true,
	}
}

// IndexerConsumerConfig is the durable consumer the indexers share: every
// message of Stream, from the first one kept (so an index made later, or
// lost, is built again from the stored jobs).
func (t Topology) IndexerConsumerConfig() jetstream.ConsumerConfig {
	t = t.withDefaults()
	return jetstream.ConsumerConfig{
		Durable:       IndexerConsumer,
		Description:   "jobwire gateways' job indexer",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 4096,
		Replicas:      t.Replicas,
	}
}

// RunnerService is the NATS service (github.com/nats-io/nats.go/micro)
// every runner announces while it runs, so the gateway can count runners
// ($SRV.INFO.jobwire-runner) without a registry of its own. Its metadata
// says what the runner serves: RunnerTypesKey (job types, comma
// separated) and RunnerConcurrencyKey (jobs it runs at once, shared
// between those types).
const (
	RunnerService = "jobwire-runner"
	// RunnerInfoSubject asks every runner who it is ($SRV.INFO.<service>).
	RunnerInfoSubject    = "$SRV.INFO." + RunnerService
	RunnerTypesKey       = "types"
	RunnerConcurrencyKey = "concurrency"
)

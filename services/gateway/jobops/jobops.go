// Package jobops holds the gateway's job rules: submit (with idempotency
// keys), get, list, cancel and the catalog of job types. It knows nothing
// of HTTP: it takes a Caller and returns typed errors (errors.go), which
// each transport answers in its own way.
package jobops

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jobwire/jobwire/services/gateway/jobindex"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Caller is who asks: the owner of the jobs they submit, and whether they
// may see every job.
type Caller struct {
	Owner string // "user:<sub>" for a bearer token, "anon:<id>" for a browser session
	Admin bool
}

// CanSee reports whether c may see (get, list, watch, cancel) a job of owner.
func (c Caller) CanSee(owner string) bool {
	return c.Admin || (owner != "" && owner == c.Owner)
}

// Config is what the job rules can be told.
type Config struct {
	MaxJSONDepth int    // deepest nesting accepted in a job's input
	CursorKey    []byte // the key list cursors are sealed with is derived from it
	// NoIndexer: this gateway reads the job index but leaves keeping it
	// to the others.
	NoIndexer bool
}

// Service applies the job rules to the streams.
type Service struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	streams *jobs.Streams
	catalog *catalog
	cursors cursorSealer
	metrics *opsMetrics
	index   *jobindex.Reader
	indexer *jobindex.Indexer
	stop    context.CancelFunc
	bg      sync.WaitGroup // the indexer and the timers
}

// New starts following the job types runners register; Close stops it.
func New(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, streams *jobs.Streams, cfg Config, log *slog.Logger) (*Service, error) {
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	cat, err := newCatalog(bg, streams.Types, log)
	if err != nil {
		stop()
		return nil, err
	}
	s := &Service{
		cfg: cfg, log: log, nc: nc, js: js, streams: streams, catalog: cat,
		cursors: newCursorSealer(cfg.CursorKey), metrics: newOpsMetrics(bg, streams.Events, cat),
		index: jobindex.NewReader(nc, streams), indexer: jobindex.New(js, streams, log),
		stop: stop,
	}
	if !cfg.NoIndexer {
		s.bg.Go(func() { s.indexer.Run(bg) })
	}
	s.bg.Go(func() { s.runTimers(bg) })
	return s, nil
}

// Close stops following the job types, indexing and the timers.
func (s *Service) Close() {
	s.stop()
	s.catalog.Wait()
	s.bg.Wait()
}

// Types lists every registered job type, sorted by name.
func (s *Service) Types() []jobs.TypeInfo { return s.catalog.list() }

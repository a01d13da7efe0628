package jobops

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// catalog follows the job types runners register in the types bucket,
// read through the contract's one reader (jobs.TypeReader), and checks
// submitted inputs against each type's JSON Schema.
type catalog struct {
	reader *jobs.TypeReader
	log    *slog.Logger
	mu     sync.RWMutex
	types  map[string]jobs.RegisteredType
	done   chan struct{}
}

func newCatalog(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) (*catalog, error) {
	c := &catalog{reader: jobs.NewTypeReader(kv), log: log, types: map[string]jobs.RegisteredType{}, done: make(chan struct{})}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		close(c.done)
		return nil, fmt.Errorf("watch job types: %w", err)
	}
	// Read the initial values (ending with a nil marker) before serving.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		c.apply(e)
	}
	go func() {
		defer close(c.done)
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					c.apply(e)
				}
			}
		}
	}()
	return c, nil
}

// Wait returns once the watcher has stopped (after its context ended).
func (c *catalog) Wait() { <-c.done }

func (c *catalog) apply(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		c.mu.Lock()
		delete(c.types, e.Key())
		c.mu.Unlock()
		return
	}
	t, err := c.reader.Decode(e)
	if err == nil {
		err = jobs.ValidateType(t.Info.Type)
	}
	if err != nil {
		c.log.Warn("ignoring a badly registered job type", "type", e.Key(), "err", err)
		return
	}
	c.mu.Lock()
	c.types[t.Info.Type] = t
	c.mu.Unlock()
}

// lookup finds a type, asking the bucket directly when the watcher has not
// seen it yet (a runner that registered a moment ago).
// The error wraps jobs.ErrUnknownType for a type no runner registered.
func (c *catalog) lookup(ctx context.Context, typ string) (jobs.RegisteredType, error) {
	if err := jobs.ValidateType(typ); err != nil {
		return jobs.RegisteredType{}, fmt.Errorf("%w: %v", jobs.ErrUnknownType, err)
	}
	c.mu.RLock()
	t, ok := c.types[typ]
	c.mu.RUnlock()
	if ok {
		return t, nil
	}
	t, err := c.reader.Get(ctx, typ)
	if err != nil {
		return jobs.RegisteredType{}, err
	}
	c.mu.Lock()
	c.types[typ] = t
	c.mu.Unlock()
	return t, nil
}

// list returns every registered type, sorted by name.
func (c *catalog) list() []jobs.TypeInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]jobs.TypeInfo, 0, len(c.types))
	for _, t := range c.types {
		out = append(out, t.Info)
	}
	slices.SortFunc(out, func(a, b jobs.TypeInfo) int { return strings.Compare(a.Type, b.Type) })
	return out
}

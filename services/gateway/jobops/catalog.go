package jobops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// catalog follows the job types runners register in the types bucket and
// checks submitted inputs against each type's JSON Schema.
type catalog struct {
	kv    jetstream.KeyValue
	log   *slog.Logger
	mu    sync.RWMutex
	types map[string]*jobType
	done  chan struct{}
}

type jobType struct {
	info   jobs.TypeInfo
	schema *jobs.InputSchema // nil: any input
}

// errUnknownType is returned by check for a type no runner registered.
var errUnknownType = errors.New("unknown job type")

func newCatalog(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) (*catalog, error) {
	c := &catalog{kv: kv, log: log, types: map[string]*jobType{}, done: make(chan struct{})}
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
	t, err := compileType(e.Value())
	if err != nil {
		c.log.Warn("ignoring a badly registered job type", "type", e.Key(), "err", err)
		return
	}
	c.mu.Lock()
	c.types[t.info.Type] = t
	c.mu.Unlock()
}

func compileType(b []byte) (*jobType, error) {
	var info jobs.TypeInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, err
	}
	if err := jobs.ValidateType(info.Type); err != nil {
		return nil, err
	}
	schema, err := jobs.CompileInputSchema(info.Type, info.InputSchema)
	if err != nil {
		return nil, err
	}
	return &jobType{info: info, schema: schema}, nil
}

// lookup finds a type, asking the bucket directly when the watcher has not
// seen it yet (a runner that registered a moment ago).
func (c *catalog) lookup(ctx context.Context, typ string) (*jobType, error) {
	if err := jobs.ValidateType(typ); err != nil {
		return nil, errUnknownType
	}
	c.mu.RLock()
	t := c.types[typ]
	c.mu.RUnlock()
	if t != nil {
		return t, nil
	}
	e, err := c.kv.Get(ctx, typ)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, errUnknownType
	}
	if err != nil {
		return nil, err
	}
	c.apply(e)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if t = c.types[typ]; t == nil {
		return nil, errUnknownType
	}
	return t, nil
}

// validate checks input against the type's schema; the error says why not.
func (t *jobType) validate(input json.RawMessage) error { return t.schema.Validate(input) }

// list returns every registered type, sorted by name.
func (c *catalog) list() []jobs.TypeInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]jobs.TypeInfo, 0, len(c.types))
	for _, t := range c.types {
		out = append(out, t.info)
	}
	slices.SortFunc(out, func(a, b jobs.TypeInfo) int { return strings.Compare(a.Type, b.Type) })
	return out
}

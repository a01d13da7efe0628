package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnknownType means no runner registered the job type in TypesBucket,
// or it registered it with an unusable input schema.
var ErrUnknownType = errors.New("unknown job type")

// RegisteredType is a job type as a runner registered it in TypesBucket:
// its TypeInfo and its compiled input schema.
type RegisteredType struct {
	Info     TypeInfo
	Schema   *InputSchema // nil: any input is accepted
	Revision uint64       // of the bucket entry it was read from
}

// Validate checks input (none: the empty object) against the type's
// input schema; the error says why it does not fit.
func (t RegisteredType) Validate(input json.RawMessage) error { return t.Schema.Validate(input) }

// DecodeType decodes one registration (a TypesBucket value, a TypeInfo)
// of type typ and compiles its input schema.
func DecodeType(typ string, registration []byte) (RegisteredType, error) {
	var info TypeInfo
	if err := json.Unmarshal(registration, &info); err != nil {
		return RegisteredType{}, fmt.Errorf("registration is not valid JSON: %w", err)
	}
	schema, err := CompileInputSchema(typ, info.InputSchema)
	if err != nil {
		return RegisteredType{}, err
	}
	return RegisteredType{Info: info, Schema: schema}, nil
}

// TypeReader is the one reader of the job-type catalog (TypesBucket): the
// gateway and the Go client both read types through it, so they accept
// the same types and inputs. It compiles each type's input schema once per
// revision of its registration. It is safe for concurrent use.
type TypeReader struct {
	kv    jetstream.KeyValue
	mu    sync.Mutex
	cache map[string]RegisteredType
}

// NewTypeReader reads the types registered in kv (the TypesBucket).
func NewTypeReader(kv jetstream.KeyValue) *TypeReader {
	return &TypeReader{kv: kv, cache: map[string]RegisteredType{}}
}

// Get reads typ's registration from the bucket now (so a type no longer
// registered is refused at once). The error wraps ErrUnknownType when no
// runner registered typ or its input schema is unusable.
func (r *TypeReader) Get(ctx context.Context, typ string) (RegisteredType, error) {
	entry, err := r.kv.Get(ctx, typ)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return RegisteredType{}, fmt.Errorf("%w %q: no runner has registered it", ErrUnknownType, typ)
	}
	if err != nil {
		return RegisteredType{}, fmt.Errorf("read job type %s: %w", typ, err)
	}
	t, err := r.Decode(entry)
	if err != nil {
		return RegisteredType{}, fmt.Errorf("%w %q: it is registered with an unusable input schema: %v", ErrUnknownType, typ, err)
	}
	return t, nil
}

// Decode is DecodeType for an entry of the bucket (read with Get or from a
// watch of the bucket), compiling its schema only when the entry's
// revision is new.
func (r *TypeReader) Decode(entry jetstream.KeyValueEntry) (RegisteredType, error) {
	typ := entry.Key()
	r.mu.Lock()
	cached, ok := r.cache[typ]
	r.mu.Unlock()
	if ok && cached.Revision == entry.Revision() {
		return cached, nil
	}
	t, err := DecodeType(typ, entry.Value())
	if err != nil {
		return RegisteredType{}, err
	}
	t.Revision = entry.Revision()
	r.mu.Lock()
	r.cache[typ] = t
	r.mu.Unlock()
	return t, nil
}

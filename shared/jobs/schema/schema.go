// Package schema holds jobwire's contract in machine-readable form, for
// services in any language: JSON Schemas (draft 2020-12) of every message,
// an AsyncAPI 3.0 document of the NATS subjects and an OpenAPI 3.1 document
// of the HTTP API. The files live beside this source and are embedded; the
// tests here and in services/gateway check them against what the code
// really sends. docs/contract.md describes how to use them.
//
// The JSON Schemas refer to each other by relative $ref, resolved against
// their $id (BaseURI + file name); load them all before compiling one. The
// $ids are names, not download addresses. openapi.json and asyncapi.json
// are self-contained: their components mirror the JSON Schemas.
package schema

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The documents, by file name.
const (
	Event    = "event.schema.json"     // an event on jobs.<id>.progress (jobs.Event)
	Request  = "request.schema.json"   // a job request on jobwire.queue.<type> (jobs.Request)
	Submit   = "submit.schema.json"    // the body of POST /api/jobs
	Snapshot = "snapshot.schema.json"  // a job's state in HTTP answers (jobs.Snapshot)
	Error    = "error.schema.json"     // the body of HTTP error answers
	WSClient = "ws-client.schema.json" // what a WebSocket client sends on /ws
	WSServer = "ws-server.schema.json" // what the server sends on /ws
	AsyncAPI = "asyncapi.json"         // the NATS subjects (AsyncAPI 3.0.0)
	OpenAPI  = "openapi.json"          // the HTTP API (OpenAPI 3.1)
)

// Schemas returns the names of the JSON Schema documents.
func Schemas() []string {
	return []string{Event, Request, Submit, Snapshot, Error, WSClient, WSServer}
}

// BaseURI is the base of every document's $id (and the URI under which
// NewCompiler knows openapi.json and asyncapi.json).
const BaseURI = "https://github.com/jobwire/jobwire/shared/jobs/schema/"

//go:embed *.json
var files embed.FS

// FS returns the documents as a read-only file system, one file per
// document at its root.
func FS() fs.FS { return files }

// Bytes returns a copy of the document name (one of the constants above).
// It panics for a name that is not embedded: the set is fixed at build time.
func Bytes(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("schema: no document %q", name))
	}
	return bytes.Clone(b)
}

// NewCompiler returns a JSON Schema compiler (github.com/santhosh-tekuri/
// jsonschema/v6) that knows every document under BaseURI + its file name
// and asserts formats such as date-time. Compile a schema by URI, e.g.
// BaseURI+Event, or a part of the OpenAPI document by JSON pointer, e.g.
// BaseURI+"openapi.json#/components/schemas/Snapshot". It never loads
// anything from the network.
func NewCompiler() (*jsonschema.Compiler, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		b, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		if err := c.AddResource(BaseURI+e.Name(), doc); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
	}
	return c, nil
}

// Compile compiles one schema by reference relative to BaseURI: a file
// name (Event, Snapshot, ...) optionally followed by a JSON pointer
// fragment, e.g. "openapi.json#/components/schemas/Snapshot".
func Compile(ref string) (*jsonschema.Schema, error) {
	c, err := NewCompiler()
	if err != nil {
		return nil, err
	}
	return c.Compile(BaseURI + ref)
}

// noLoader refuses every URL that was not added as a resource, so a
// reference to a document that is not part of the contract is an error
// instead of a file or network read.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema: %s is not a jobwire contract document", url)
}

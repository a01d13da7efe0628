package httpapi_test

import (
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jobwire/jobwire/shared/jobs/schema"
)

// tsInterfaces reads the interfaces of a hand-written .d.ts: name →
// property → type, with "?" after the type of an optional property. Type
// aliases (export type X = ...;) are resolved into their text.
func tsInterfaces(t *testing.T, src string) map[string]map[string]string {
	t.Helper()
	aliases := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^export type (\w+) = ([^;]+);`).FindAllStringSubmatch(src, -1) {
		aliases[m[1]] = strings.TrimSpace(m[2])
	}
	out := map[string]map[string]string{}
	prop := regexp.MustCompile(`^(\w+)(\??): (.+);$`)
	for _, m := range regexp.MustCompile(`(?s)export interface (\w+) \{\n(.*?)\n\}`).FindAllStringSubmatch(src, -1) {
		props := map[string]string{}
		for line := range strings.SplitSeq(m[2], "\n") {
			line = strings.TrimSpace(line)
			p := prop.FindStringSubmatch(line)
			if p == nil {
				continue // comments, methods
			}
			typ := p[3]
			if a, ok := aliases[typ]; ok {
				typ = a
			}
			props[p[1]] = typ + p[2]
		}
		out[m[1]] = props
	}
	return out
}

// tsTypeOf is the TypeScript type that fits a JSON Schema property, with
// "?" when it is not required.
func tsTypeOf(t *testing.T, name string, p map[string]any, required bool) string {
	t.Helper()
	typ := ""
	switch ref, _ := p["$ref"].(string); {
	case strings.HasSuffix(ref, "/Time"):
		typ = "string" // Time is a string alias
	case strings.HasSuffix(ref, "/Error"):
		typ = "JobError"
	case ref != "":
		t.Fatalf("property %s: $ref %q has no TypeScript type here; add one", name, ref)
	case p["enum"] != nil:
		var lits []string
		for _, v := range p["enum"].([]any) {
			lits = append(lits, `"`+v.(string)+`"`)
		}
		typ = strings.Join(lits, " | ")
	default:
		switch p["type"] {
		case "string":
			typ = "string"
		case "integer", "number":
			typ = "number"
		case "boolean":
			typ = "boolean"
		case nil:
			typ = "unknown" // any JSON value
		default:
			t.Fatalf("property %s: type %v has no TypeScript type here; add one", name, p["type"])
		}
	}
	if !required {
		typ += "?"
	}
	return typ
}

// TestJobwireTypesMatchSchemas checks jobwire.d.ts against the JSON
// Schemas: every property of an event, a snapshot and an error is in its
// interface with a fitting type, optional exactly when the schema does
// not require it, and the interfaces have no other properties. A field
// added to a schema fails here until jobwire.d.ts has it.
func TestJobwireTypesMatchSchemas(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("web/jobwire.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	ifaces := tsInterfaces(t, string(src))
	type object struct {
		Required   []string                   `json:"required"`
		Properties map[string]map[string]any  `json:"properties"`
		Defs       map[string]json.RawMessage `json:"$defs"`
	}
	read := func(doc string) object {
		var o object
		if err := json.Unmarshal(schema.Bytes(doc), &o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	event := read(schema.Event)
	var jobError object
	if err := json.Unmarshal(event.Defs["Error"], &jobError); err != nil {
		t.Fatal(err)
	}
	for iface, o := range map[string]object{"JobEvent": event, "Snapshot": read(schema.Snapshot), "JobError": jobError} {
		got, ok := ifaces[iface]
		if !ok {
			t.Errorf("jobwire.d.ts has no interface %s", iface)
			continue
		}
		want := map[string]string{}
		for name, p := range o.Properties {
			want[name] = tsTypeOf(t, name, p, slices.Contains(o.Required, name))
		}
		for _, name := range slices.Sorted(maps.Keys(want)) {
			if got[name] != want[name] {
				t.Errorf("%s.%s: jobwire.d.ts has %q; the schema wants %q", iface, name, got[name], want[name])
			}
		}
		for _, name := range slices.Sorted(maps.Keys(got)) {
			if _, ok := want[name]; !ok {
				t.Errorf("%s.%s is in jobwire.d.ts but not in the schema", iface, name)
			}
		}
	}
}

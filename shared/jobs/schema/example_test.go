package schema_test

import (
	"bytes"
	"fmt"

	"github.com/jobwire/jobwire/shared/jobs/schema"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// A service that receives events on jobs.*.progress can check them against
// the contract before it trusts them.
func ExampleCompile() {
	sch, err := schema.Compile(schema.Event)
	if err != nil {
		panic(err)
	}
	for _, msg := range []string{
		`{"job_id":"01JPA8ZV9N3Q6T8X2M4K7B5C1D","seq":3,"kind":"progress","status":"running","percent":42.5,"attempt":1,
		  "time":"2025-03-14T09:39:28.123456789Z","started_at":"2025-03-14T09:39:27Z"}`,
		`{"job_id":"01JPA8ZV9N3Q6T8X2M4K7B5C1D","seq":3,"kind":"progress","status":"running","percent":150}`,
	} {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(msg)))
		if err != nil {
			panic(err)
		}
		fmt.Println(sch.Validate(v) == nil)
	}
	// Output:
	// true
	// false
}

// Parts of the OpenAPI document compile by JSON pointer.
func ExampleCompile_openAPI() {
	sch, err := schema.Compile(schema.OpenAPI + "#/components/schemas/Snapshot")
	if err != nil {
		panic(err)
	}
	v, _ := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(
		`{"id":"01JPA8ZV9N3Q6T8X2M4K7B5C1D","type":"demo","status":"queued","seq":1,"updated_at":"2025-03-14T09:39:26Z"}`)))
	fmt.Println(sch.Validate(v) == nil)
	// Output: true
}

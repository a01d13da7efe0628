package jobops

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// jsonDepth measures the nesting of any JSON exactly (the submit rule that
// refuses too deep an input counts on it), strings with brackets and
// escapes included.
func FuzzJSONDepth(f *testing.F) {
	for _, seed := range []string{
		`{"steps":20}`, `[]`, `[[[[[[[[[[[[1]]]]]]]]]]]]`, `"\"[{"`, `{"a":"\\","b":[{"c":"]}"}]}`,
		strings.Repeat("[", 5000) + strings.Repeat("]", 5000), `"\u0000*>"`, `1`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		if want := referenceDepth(t, b); jsonDepth(b) != want {
			t.Fatalf("jsonDepth(%s) = %d, want %d", b, jsonDepth(b), want)
		}
	})
}

func referenceDepth(t *testing.T, b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return deepest
		}
		if err != nil {
			t.Fatalf("accepted input is not JSON: %v", err)
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
				deepest = max(deepest, depth)
			} else {
				depth--
			}
		}
	}
}

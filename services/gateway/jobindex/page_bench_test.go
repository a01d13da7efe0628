package jobindex_test

import (
	"encoding/json"
	"testing"

	"github.com/jobwire/jobwire/services/gateway/jobindex"
	"github.com/jobwire/jobwire/shared/jobs"
)

// BenchmarkPage reads a page of 50 ended jobs of an owner's list, and
// of the owner's list of failed jobs, and encodes it as GET /api/jobs
// does: the gateway's share of a page (the embedded NATS server's too).
func BenchmarkPage(b *testing.B) {
	bb := setup(b)
	for i := range 150 {
		st := jobs.StatusSucceeded
		if i%2 == 0 {
			st = jobs.StatusFailed
		}
		bb.run(b, "user:bench", "demo", st)
	}
	bb.waitIndexed(b)
	for _, status := range []jobs.Status{"", jobs.StatusFailed} {
		b.Run("status="+string(status), func(b *testing.B) {
			q := jobindex.PageQuery{Scope: jobs.OwnerScope("user:bench"), Limit: 50, Status: status}
			b.ReportAllocs()
			for b.Loop() {
				p, err := bb.reader.Page(b.Context(), q)
				if err != nil || len(p.Jobs) != 50 {
					b.Fatalf("%d jobs, %v", len(p.Jobs), err)
				}
				page := make([]json.RawMessage, len(p.Jobs))
				for i, l := range p.Jobs {
					page[i] = l.JSON
				}
				if _, err := json.Marshal(page); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

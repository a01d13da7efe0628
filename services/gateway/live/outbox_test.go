package live

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A watcher far behind gets each job's waiting events coalesced to the
// latest: far more than coalesceAt events for many jobs, where half the
// jobs end while the others go on (so coalescing runs while their final
// events wait). Each job's latest event arrives, its final one included,
// and a job's events stay in seq order.
func TestOutboxCoalescesToTheLatestEvent(t *testing.T) {
	t.Parallel()
	const jobCount, shortRun, longRun = 100, 50, 120
	box := newOutbox(func(error) { t.Error("the outbox closed the watcher") })
	coalesced := prometheus.NewCounter(prometheus.CounterOpts{Name: "coalesced"})
	box.coalesced = coalesced
	ids := make([]string, jobCount)
	lastSeq := map[string]uint64{}
	for i := range ids {
		ids[i] = fmt.Sprintf("JOB%03d", i)
		lastSeq[ids[i]] = longRun
		if i%2 == 0 {
			lastSeq[ids[i]] = shortRun
		}
		box.startReplay(ids[i])
		box.endReplay(ids[i])
	}
	queued := 0
	for seq := uint64(1); seq <= longRun; seq++ {
		for _, id := range ids {
			if seq <= lastSeq[id] {
				box.live(Msg{jobID: id, seq: seq, terminal: seq == lastSeq[id]})
				queued++
			}
		}
	}
	delivered := map[string][]uint64{}
	total := 0
	for m, ok := box.next(); ok; m, ok = box.next() {
		got := delivered[m.jobID]
		if n := len(got); n > 0 && m.seq <= got[n-1] {
			t.Fatalf("job %s: seq %d after %d", m.jobID, m.seq, got[n-1])
		}
		delivered[m.jobID] = append(got, m.seq)
		total++
	}
	if total >= queued {
		t.Fatalf("%d of %d events delivered: nothing was coalesced", total, queued)
	}
	if n := testutil.ToFloat64(coalesced); int(n) != queued-total {
		t.Errorf("%v events counted as coalesced; %d of %d were delivered", n, total, queued)
	}
	for _, id := range ids {
		got := delivered[id]
		if len(got) == 0 || got[len(got)-1] != lastSeq[id] {
			t.Errorf("job %s: delivered %v, want it to end with its final event, seq %d", id, got, lastSeq[id])
		}
	}
}

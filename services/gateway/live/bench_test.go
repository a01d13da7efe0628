package live

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
)

// BenchmarkFanOut is the gateway's per-event path: parse the event once,
// hand it to every watcher's outbox, and take it out again as the writers
// do. Per op: one event to N watchers.
func BenchmarkFanOut(b *testing.B) {
	for _, watchers := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("watchers=%d", watchers), func(b *testing.B) {
			id := jobs.NewID(time.Now())
			subject := jobs.ProgressSubject(id)
			boxes := make([]*outbox, watchers)
			for i := range boxes {
				boxes[i] = newOutbox(func(error) {})
				boxes[i].startReplay(id)
				boxes[i].endReplay(id)
			}
			now := time.Now()
			ev := jobs.Event{JobID: id, Type: "demo", Kind: jobs.KindProgress, Status: jobs.StatusRunning, Attempt: 1, Time: now, Percent: jobs.Percentage(50)}
			b.ReportAllocs()
			var seq uint64
			for b.Loop() {
				seq++
				ev.Seq = seq
				data, _ := json.Marshal(ev) // made by the runner, not the gateway
				m, ok := eventMsg(subject, data, benchFrame, false)
				if !ok {
					b.Fatal("bad event")
				}
				for _, box := range boxes {
					box.live(m)
					if _, ok := box.next(); !ok {
						b.Fatal("nothing queued")
					}
				}
			}
		})
	}
}

// benchFrame makes a frame as the WebSocket's does: the event wrapped once.
func benchFrame(id string, event []byte, _ bool) []byte {
	b := append(make([]byte, 0, len(event)+len(id)+40), `{"op":"event","job_id":"`...)
	b = append(append(b, id...), `","event":`...)
	return append(append(b, event...), '}')
}

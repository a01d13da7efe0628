package live

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
)

// A session closed while its outbox still holds events stops writing at
// once, instead of writing out the backlog first (shutdown and a failed
// gap repair must not wait for a slow reader).
func TestWriteLoopStopsWhenTheSessionCloses(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &conn{cancel: cancel}
	box := newOutbox(c.close)
	id := jobs.NewID(time.Now())
	box.startReplay(id)
	box.endReplay(id)
	for seq := range uint64(100) {
		box.add(Msg{jobID: id, seq: seq + 1, frame: []byte(fmt.Sprintf(`{"seq":%d}`, seq+1))})
	}
	writes, flushes := 0, 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		writeLoop(ctx, box, time.Minute, c, nil, func(Msg) error {
			if writes++; writes == 5 {
				c.close(ErrShuttingDown)
			}
			return nil
		}, func() error { flushes++; return nil })
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writeLoop did not return after its session closed")
	}
	if writes != 5 || flushes != 0 {
		t.Fatalf("%d writes and %d flushes after the close at the 5th write; want 5 and 0 (the caller uncorks)", writes, flushes)
	}
}

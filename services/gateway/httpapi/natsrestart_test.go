package httpapi_test

import (
	"testing"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
)

// The NATS server restarts under a watcher: the gateway and the runner
// reconnect, and the watcher still gets every event of the job, in order,
// without gaps or duplicates.
func TestWatcherSurvivesNATSRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a NATS server")
	}
	t.Parallel()
	ns := natstest.NewRestartable(t)
	sys := testsys.StartOn(t, ns.Server())

	snap := sys.Submit(t, "demo", `{"steps":60,"step_ms":50}`)
	ws := dialWS(t, sys)
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `","after_seq":0}`)
	seqs := readSeqs(t, ws, snap.ID, func(m serverMsg) bool { return m.Event.Seq >= 8 })

	ns.Restart()

	rest := readSeqs(t, ws, snap.ID, func(m serverMsg) bool { return m.Event.Status.Terminal() })
	all := append(seqs, rest...)
	checkExact(t, all, 1)
	if final, code := sys.Get(t, snap.ID); code != 200 || final.Status != jobs.StatusSucceeded || final.Seq != all[len(all)-1] {
		t.Fatalf("final state %d %+v, watcher ended at %d", code, final, all[len(all)-1])
	}
}

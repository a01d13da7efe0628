package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// On a cluster, a GET right after the 202 finds the job, at least in the
// state the 202 gave, also when the gateway is connected to a node that
// only follows the streams the job is read from (a direct get there may
// be answered before the node has the write). The same reads as direct
// gets on that node are counted beside, to show what the leader reads
// avoid.
func TestClusterReadsYourWriteRightAfter202(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node NATS cluster")
	}
	const rounds = 300
	c := natstest.Cluster(t, 3)
	// The streams first, so that node 0 can be made a follower of both
	// streams a job is read from before the gateway connects to it.
	admin := natstest.ConnectURL(t, c.URLs())
	ajs, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := (jobs.Topology{Replicas: 3}).CreateOrUpdate(ctx, ajs); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{jobs.Stream, jobs.RecordsStream} {
		c.WaitStreamCurrent(ajs, s, 30*time.Second)
		for try := 0; c.StreamLeader(ajs, s) == 0; try++ {
			if try == 10 {
				t.Fatalf("node 0 still leads %s after %d step-downs", s, try)
			}
			if _, err := admin.Request("$JS.API.STREAM.LEADER.STEPDOWN."+s, nil, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			c.WaitStreamCurrent(ajs, s, 30*time.Second)
		}
	}
	// The gateway's connection knows every node but starts on node 0.
	urls := c.URL(0) + "," + c.URL(1) + "," + c.URL(2)
	sys := testsys.StartOnURLs(t, urls, testsys.WithReplicas(3), testsys.WithNATSOptions(nats.DontRandomize()))
	if got := sys.NC.ConnectedServerName(); got != c.Name(0) {
		t.Fatalf("the gateway is connected to %s, want %s", got, c.Name(0))
	}
	// A plain direct get on node 0, for comparison.
	nc0 := natstest.ConnectURL(t, c.URL(0))
	js0, err := jetstream.New(nc0)
	if err != nil {
		t.Fatal(err)
	}
	events0, err := js0.Stream(ctx, jobs.Stream)
	if err != nil {
		t.Fatal(err)
	}

	notFound, behind, directMissed := 0, 0, 0
	for range rounds {
		snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":1}`)
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := events0.GetLastMsgForSubject(ctx, jobs.JobSubjects(snap.ID)); errors.Is(err, jetstream.ErrMsgNotFound) {
				directMissed++
			}
		})
		resp, body := sys.Call(t, "GET", "/api/jobs/"+snap.ID, "", "", nil)
		switch {
		case resp.StatusCode == http.StatusNotFound:
			notFound++
		case resp.StatusCode != http.StatusOK:
			t.Fatalf("GET right after the 202: %d %s", resp.StatusCode, body)
		case decodeSnap(t, body).Seq < snap.Seq:
			behind++
		}
		wg.Wait()
	}
	t.Logf("%d submits, each followed at once by a GET through a gateway on a follower node: %d not found, %d behind the 202; "+
		"plain direct gets on that node at the same moment missed the job %d times", rounds, notFound, behind, directMissed)
	if notFound > 0 || behind > 0 {
		t.Errorf("reads right after the 202: %d not found, %d behind", notFound, behind)
	}
}

// decodeSnap decodes a snapshot the gateway answered.
func decodeSnap(t *testing.T, b []byte) jobs.Snapshot {
	t.Helper()
	var s jobs.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return s
}

package main

import (
	"testing"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
)

// One job in ten of each owner fails, so a status=failed page of an
// owner finds its limit within the positions it may examine.
func TestSeedStatus(t *testing.T) {
	const owners = 7
	failed := map[int]int{}
	for i := range 700 {
		if seedStatus(i, owners) == jobs.StatusFailed {
			failed[i%owners]++
		}
	}
	for o := range owners {
		if failed[o] != 10 {
			t.Errorf("owner %d: %d of 100 jobs failed, want 10", o, failed[o])
		}
	}
}

func TestRequestKind(t *testing.T) {
	for _, c := range []struct {
		subject, body, want string
	}{
		{"$JS.API.DIRECT.GET.JOBS_COUNTS." + jobs.OwnerScope("user:x").PositionCounter(), "", "JOBS_COUNTS last of jobwire.count.pos"},
		{"$JS.API.DIRECT.GET.JOBS_INDEX", `{"multi_last":["jobwire.index.all.1"]}`, "JOBS_INDEX multi_last"},
		{"$JS.API.DIRECT.GET.JOBS_INDEX", `{"seq":1,"next_by_subj":"jobwire.index.all.*","batch":1}`, "JOBS_INDEX batch"},
	} {
		if got := requestKind(&nats.Msg{Subject: c.subject, Data: []byte(c.body)}); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.subject, c.body, got, c.want)
		}
	}
}

package jobops

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/jobwire/jobwire/services/gateway/jobindex"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
)

// Runner discovery: every runner answers $SRV.INFO.jobwire-runner (NATS
// services, jobs.RunnerService). The answers come within a few
// milliseconds; the gateway waits for them until none has come for
// runnerQuiet, and never longer than runnerWait.
const (
	runnerQuiet = 50 * time.Millisecond
	runnerWait  = 250 * time.Millisecond
)

// runners counts the runners that answer, and their concurrency, by the
// job types they serve.
func (s *Service) runners(ctx context.Context) map[string]jobindex.RunnerStats {
	ctx, cancel := context.WithTimeout(ctx, runnerWait)
	defer cancel()
	out := map[string]jobindex.RunnerStats{}
	inbox := s.nc.NewInbox()
	replies := make(chan *nats.Msg, 256)
	sub, err := s.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return out
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := s.nc.PublishRequest(jobs.RunnerInfoSubject, inbox, nil); err != nil {
		return out
	}
	quiet := time.NewTimer(runnerWait)
	defer quiet.Stop()
	seen := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return out
		case <-quiet.C:
			return out
		case m := <-replies:
			quiet.Reset(runnerQuiet)
			var info struct {
				ID       string            `json:"id"`
				Metadata map[string]string `json:"metadata"`
			}
			if json.Unmarshal(m.Data, &info) != nil || seen[info.ID] {
				continue
			}
			seen[info.ID] = true
			concurrency, _ := strconv.Atoi(info.Metadata[jobs.RunnerConcurrencyKey])
			for typ := range strings.SplitSeq(info.Metadata[jobs.RunnerTypesKey], ",") {
				if jobs.ValidateType(typ) != nil {
					continue
				}
				r := out[typ]
				r.Count++
				r.Concurrency += max(concurrency, 0)
				out[typ] = r
			}
		}
	}
}

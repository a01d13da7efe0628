//go:build dockertest

// Package docker tests docker-compose.yml: the whole stack (3 NATS nodes,
// set-up, 2 gateways, 2 runners) built offline and run on the Docker
// engine, under load, while NATS nodes and gateways fail. It needs Docker
// and Compose, and the build tag: .ci/run runs
//
//	go test -tags dockertest -count=1 -timeout 30m ./deploy/docker/
//
// Without Docker it skips, unless CI=true: then it fails.
package docker

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The load: one job every submitEvery (each runs 2 s), watched by one
// WebSocket per gateway and the outside observer.
const (
	submitEvery = 300 * time.Millisecond
	// settle is how long the load runs after a fault has healed before
	// the next one.
	settle = 10 * time.Second
)

var phases = []string{"warm-up", "kill the JOBS stream leader", "kill a gateway", "cut a NATS node off the network"}

func TestClusterSurvivesFaults(t *testing.T) {
	compose := requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	start := time.Now()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	goImg := goImage(t, ctx, root)
	s := newStack(t, compose, goImg)
	t.Logf("Go image %s ready after %s", goImg, time.Since(start).Round(time.Second))

	buildStart := time.Now()
	s.run(ctx, "build")
	t.Logf("images built in %s", time.Since(buildStart).Round(time.Second))
	upStart := time.Now()
	s.run(ctx, "up", "-d")
	hctx, hcancel := context.WithTimeout(ctx, 3*time.Minute)
	s.waitHealthy(hctx, "nats-1", "nats-2", "nats-3", "gateway-1", "gateway-2", "runner-1", "runner-2")
	hcancel()
	t.Logf("stack up and healthy in %s", time.Since(upStart).Round(time.Second))

	var gws gateways
	refreshGateway := func(i int) {
		addr, err := s.port(ctx, fmt.Sprintf("gateway-%d", i+1), 8080)
		if err != nil {
			t.Fatal(err)
		}
		gws.set(i, addr)
	}
	refreshGateway(0)
	refreshGateway(1)
	monitors := func() []string {
		var m []string
		for i := 1; i <= 3; i++ {
			if a, err := s.port(ctx, fmt.Sprintf("nats-%d", i), 8222); err == nil {
				m = append(m, a)
			}
		}
		return m
	}
	var natsURLs []string
	for i := 1; i <= 3; i++ {
		a, err := s.port(ctx, fmt.Sprintf("nats-%d", i), 4222)
		if err != nil {
			t.Fatal(err)
		}
		natsURLs = append(natsURLs, "nats://"+a)
	}
	obs, err := newObserver(strings.Join(natsURLs, ","), s.observerPassword)
	if err != nil {
		t.Fatalf("observer: %v", err)
	}
	defer obs.nc.Close()

	// The load runs until every fault has been tried.
	hc := newClient()
	if err := startSession(ctx, hc, gws.get(0)); err != nil {
		t.Fatal(err)
	}
	tl := newTally()
	watchers := []*watcher{newWatcher("ws-1", 0, hc, &gws), newWatcher("ws-2", 1, hc, &gws)}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, w := range watchers {
		wg.Go(func() { w.run(loadCtx) })
	}
	submitCtx, stopSubmits := context.WithCancel(loadCtx)
	wg.Go(func() {
		submitLoop(submitCtx, hc, &gws, tl, submitEvery, func(id string) {
			for _, w := range watchers {
				w.watch(id)
			}
		})
	})
	defer func() { stopLoad(); wg.Wait() }()

	// waitSubmits waits until jobs are accepted again after now; if none
	// is for 2 minutes, the test fails but goes on, to count and clean up.
	waitSubmits := func(what string) {
		t.Helper()
		ids, _ := tl.jobs()
		n := len(ids)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if ids, _ := tl.jobs(); len(ids) > n+2 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: no job accepted for 2 minutes", what)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	pause := func(d time.Duration) {
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(d):
		}
	}
	restart := func(service, id string) {
		t.Helper()
		docker(t, ctx, "start", id)
		hctx, hcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer hcancel()
		s.waitHealthy(hctx, service)
	}

	waitSubmits("warm-up")
	pause(settle)

	// 1. Kill the node that leads the job queue.
	tl.setPhase(1)
	leader := ""
	for deadline := time.Now().Add(30 * time.Second); leader == "" && time.Now().Before(deadline); {
		if leader = streamLeader(ctx, monitors(), "JOBS"); leader == "" {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if leader == "" {
		t.Fatal("no node leads stream JOBS")
	}
	leaderID := s.container(ctx, leader)
	t.Logf("killing %s, the JOBS stream's leader", leader)
	docker(t, ctx, "kill", leaderID)
	waitSubmits("after killing the JOBS leader")
	pause(settle)
	restart(leader, leaderID)
	pause(settle)

	// 2. Kill a gateway: its watcher moves to the other one.
	tl.setPhase(2)
	gwID := s.container(ctx, "gateway-1")
	t.Log("killing gateway-1")
	docker(t, ctx, "kill", gwID)
	waitSubmits("after killing gateway-1")
	pause(settle)
	restart("gateway-1", gwID)
	refreshGateway(0)
	pause(settle)

	// 3. Cut a NATS node (the queue's leader now) off the network, then
	// let it back.
	tl.setPhase(3)
	victim := streamLeader(ctx, monitors(), "JOBS")
	if victim == "" {
		victim = "nats-2"
	}
	victimID := s.container(ctx, victim)
	network := s.project + "_default"
	t.Logf("disconnecting %s from %s", victim, network)
	docker(t, ctx, "network", "disconnect", network, victimID)
	waitSubmits("with a node cut off")
	pause(2 * settle)
	docker(t, ctx, "network", "connect", "--alias", victim, network, victimID)
	hctx, hcancel = context.WithTimeout(ctx, 2*time.Minute)
	s.waitHealthy(hctx, victim)
	hcancel()
	pause(settle)

	// Stop submitting; every accepted job must end, and every watcher see
	// it end.
	stopSubmits()
	ids, phaseOf := tl.jobs()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		left := 0
		for _, w := range watchers {
			left += w.unfinished()
		}
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	stopLoad()
	wg.Wait()

	// Count, per phase.
	type count struct{ accepted, oneFinal, lost, duplicated, watchGaps, watchDups, watchUnended, obsGaps, obsDups int }
	counts := make([]count, len(phases))
	for _, id := range ids {
		p := phaseOf[id]
		c := &counts[p]
		c.accepted++
		finals, gaps, dups, err := obs.history(ctx, id)
		switch {
		case err != nil:
			t.Errorf("job %s: history: %v", id, err)
			c.lost++
		case finals == 1 && gaps == 0 && dups == 0:
			c.oneFinal++
		case finals == 0:
			c.lost++
		default:
			c.duplicated++
			t.Errorf("job %s: %d final events, %d seq gaps, %d repeated seqs in its stored history", id, finals, gaps, dups)
		}
		for _, w := range watchers {
			w.mu.Lock()
			l := w.logs[id]
			w.mu.Unlock()
			if l == nil {
				continue
			}
			c.watchGaps += l.gaps
			c.watchDups += l.dups
			if l.gaps+l.dups > 0 {
				t.Logf("%s: job %s seqs seen %v (watch errors %v)", w.name, id, l.seen, l.errors)
			}
			if !l.final {
				c.watchUnended++
				if c.watchUnended <= 5 {
					t.Logf("%s: job %s not seen ending: last seq %d, watch errors %v", w.name, id, l.last, l.errors)
				}
			}
		}
		obs.mu.Lock()
		if l := obs.logs[id]; l != nil {
			c.obsGaps += l.gaps
			c.obsDups += l.dups
		}
		obs.mu.Unlock()
	}
	var report strings.Builder
	fmt.Fprintf(&report, "| phase | accepted | one final state | lost | duplicated | watcher seq gaps / dups / unended | observer (core sub) gaps / dups | submits given up | longest failing window |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for p, c := range counts {
		tl.mu.Lock()
		failed, longest := tl.failed[p], tl.longest[p]
		tl.mu.Unlock()
		fmt.Fprintf(&report, "| %s | %d | %d | %d | %d | %d / %d / %d | %d / %d | %d | %s |\n", phases[p], c.accepted, c.oneFinal, c.lost, c.duplicated,
			c.watchGaps, c.watchDups, c.watchUnended, c.obsGaps, c.obsDups, failed, longest.Round(100*time.Millisecond))
		if c.lost > 0 || c.duplicated > 0 || c.watchGaps > 0 || c.watchDups > 0 || c.watchUnended > 0 || c.obsDups > 0 {
			t.Errorf("%s: %d lost, %d duplicated, watchers: %d gaps, %d repeats, %d jobs not seen ending; observer: %d repeats",
				phases[p], c.lost, c.duplicated, c.watchGaps, c.watchDups, c.watchUnended, c.obsDups)
		}
	}
	for _, w := range watchers {
		fmt.Fprintf(&report, "\nwatcher %s reconnected %d times, watched a job again after an error answer %d times %v", w.name, w.reconnects, w.rewatches, w.errCodes)
	}
	t.Logf("results (whole test %s):\n%s", time.Since(start).Round(time.Second), report.String())
	if len(ids) < 100 {
		t.Errorf("only %d jobs accepted in all", len(ids))
	}
}

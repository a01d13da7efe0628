package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"time"
)

// The gateway has no heap endpoint, so the memory phase starts it with
// GODEBUG=gctrace=1: the Go runtime then writes a line per collection to
// stderr (the gateway's log here), e.g.
//
//	gc 12 @3.456s 2%: 0.1+1.2+0.01 ms clock, ..., 40->42->20 MB, 44 MB goal, 1 MB stacks, 0 MB globals, 2 P
//
// where 20 is the heap still live after the collection and "stacks" the
// goroutine stacks scanned (both in MiB).
var gcLine = regexp.MustCompile(`^gc \d+ @[0-9.]+s \d+%: .* (\d+)->(\d+)->(\d+) MB, (\d+) MB goal, (\d+) MB stacks`)

// heapSample is the gateway's heap after one garbage collection, in MiB.
type heapSample struct {
	LiveMiB   int64 `json:"live_heap_mib"`
	StacksMiB int64 `json:"stacks_mib"`
	GoalMiB   int64 `json:"heap_goal_mib"`
}

// gcLines returns how many collections the log reports and the last one.
func gcLines(path string) (int, heapSample, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, heapSample{}, err
	}
	defer f.Close()
	var n int
	var last heapSample
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := gcLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n++
		last.LiveMiB, _ = strconv.ParseInt(m[3], 10, 64)
		last.GoalMiB, _ = strconv.ParseInt(m[4], 10, 64)
		last.StacksMiB, _ = strconv.ParseInt(m[5], 10, 64)
	}
	return n, last, sc.Err()
}

// liveHeap makes the gateway collect garbage now and returns what the
// collection left. It cannot ask for a collection, so it makes garbage:
// GET /api/jobs?limit=500 requests (each reads the stream's subjects and
// up to 500 job states) until the log shows a new collection. The
// requests' own short-lived data is in that figure too, a few MiB.
func liveHeap(ctx context.Context, sys *system, limit time.Duration) (heapSample, error) {
	if sys.logPath == "" {
		return heapSample{}, errors.New("the gateway was not started by the tool, so its GODEBUG=gctrace=1 lines cannot be read")
	}
	before, _, err := gcLines(sys.logPath)
	if err != nil {
		return heapSample{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	a := newAPI(sys, 2)
	defer a.close()
	for i := 0; i < 100_000 && ctx.Err() == nil; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sys.URL+"/api/jobs?limit=500", nil)
		req.Header.Set("Authorization", "Bearer "+sys.Token)
		resp, err := a.hc.Do(req)
		if err != nil {
			return heapSample{}, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if i%5 != 4 {
			continue
		}
		sleepCtx(ctx, 20*time.Millisecond) // let the line reach the log
		n, last, err := gcLines(sys.logPath)
		if err != nil {
			return heapSample{}, err
		}
		if n > before {
			return last, nil
		}
	}
	return heapSample{}, fmt.Errorf("no garbage collection in the gateway within %v", limit)
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sync"
	"time"
)

// scraper plays Prometheus against a started gateway (--scrape-metrics):
// it GETs /metrics every interval while the system runs, so the
// measurement includes serving metrics, not only counting them.
type scraper struct {
	cancel context.CancelFunc
	done   sync.WaitGroup

	n, failed int
	took      time.Duration
}

var metricsLogLine = regexp.MustCompile(`metrics server listening" addr=(\S+)`)

// metricsURL waits (up to limit) for the gateway's log to say where its
// metrics listen.
func (s *system) metricsURL(ctx context.Context, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for {
		if b, err := os.ReadFile(s.logPath); err == nil {
			if m := metricsLogLine.FindSubmatch(b); m != nil {
				return "http://" + string(m[1]) + "/metrics", nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the gateway logged no metrics address in %v%s", limit, s.logTail())
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startScraper scrapes url every interval until stop.
func startScraper(url string, interval time.Duration) *scraper {
	ctx, cancel := context.WithCancel(context.Background())
	sc := &scraper{cancel: cancel}
	sc.done.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			start := time.Now()
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("%s", resp.Status)
				}
			}
			rcancel()
			if ctx.Err() != nil {
				return
			}
			sc.n++
			sc.took += time.Since(start)
			if err != nil {
				sc.failed++
			}
		}
	})
	return sc
}

// stop ends the scraping and says what it did.
func (sc *scraper) stop() string {
	sc.cancel()
	sc.done.Wait()
	mean := time.Duration(0)
	if sc.n > 0 {
		mean = sc.took / time.Duration(sc.n)
	}
	return fmt.Sprintf("%d scrapes of /metrics (%d failed), %.2f ms each", sc.n, sc.failed, float64(mean.Microseconds())/1000)
}

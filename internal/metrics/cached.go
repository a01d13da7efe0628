package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Cached is a collector of figures that cost a NATS request to read (a
// consumer's or a stream's info): Read runs at most once per MaxAge, at a
// scrape, bounded by Timeout; scrapes in between (several Prometheus
// servers, a dashboard's refresh) get the figures read last. A process
// nobody scrapes reads nothing. When Read fails, Errors counts it, and
// only the figures it did read are sent (what it could not read is
// absent from the scrape, never stale).
type Cached struct {
	Descs   []*prometheus.Desc // every metric read may return
	Read    func(ctx context.Context) ([]prometheus.Metric, error)
	MaxAge  time.Duration
	Timeout time.Duration
	Errors  prometheus.Counter // failed reads
	// Parent bounds every read (its owner's life); nil: none but Timeout.
	Parent context.Context

	mu   sync.Mutex
	at   time.Time
	last []prometheus.Metric
}

// Describe sends c.Descs and the error counter's.
func (c *Cached) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.Descs {
		ch <- d
	}
	c.Errors.Describe(ch)
}

// Collect reads the figures if the last read is older than MaxAge, and
// sends them.
func (c *Cached) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if time.Since(c.at) >= c.MaxAge {
		parent := c.Parent
		if parent == nil {
			parent = context.Background()
		}
		ctx, cancel := context.WithTimeout(parent, c.Timeout)
		ms, err := c.Read(ctx)
		cancel()
		c.at, c.last = time.Now(), ms
		if err != nil {
			c.Errors.Inc()
		}
	}
	last := c.last
	c.mu.Unlock()
	for _, m := range last {
		ch <- m
	}
	c.Errors.Collect(ch)
}

package natsconn

import (
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports the figures nats.go keeps for nc (read at each scrape,
// so they cost nothing in between), labelled connection=name ("gateway",
// "runner"): a process with two connections (--dev) registers both.
func Metrics(nc *nats.Conn, name string) prometheus.Collector {
	l := prometheus.Labels{"connection": name}
	return &connMetrics{
		nc:         nc,
		reconnects: prometheus.NewDesc("jobwire_nats_reconnects_total", "Times the NATS connection was re-established after it was lost.", nil, l),
		connected:  prometheus.NewDesc("jobwire_nats_connected", "1 while the NATS connection is up, 0 while it is down or reconnecting.", nil, l),
		msgsIn:     prometheus.NewDesc("jobwire_nats_received_messages_total", "Messages received on the NATS connection.", nil, l),
		msgsOut:    prometheus.NewDesc("jobwire_nats_sent_messages_total", "Messages sent on the NATS connection.", nil, l),
	}
}

type connMetrics struct {
	nc                                     *nats.Conn
	reconnects, connected, msgsIn, msgsOut *prometheus.Desc
}

func (m *connMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.reconnects
	ch <- m.connected
	ch <- m.msgsIn
	ch <- m.msgsOut
}

func (m *connMetrics) Collect(ch chan<- prometheus.Metric) {
	st := m.nc.Stats()
	up := 0.0
	if m.nc.IsConnected() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(m.reconnects, prometheus.CounterValue, float64(st.Reconnects))
	ch <- prometheus.MustNewConstMetric(m.connected, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(m.msgsIn, prometheus.CounterValue, float64(st.InMsgs))
	ch <- prometheus.MustNewConstMetric(m.msgsOut, prometheus.CounterValue, float64(st.OutMsgs))
}
